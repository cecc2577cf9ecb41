"""Enrichment results (per asset and enricher), regions, tags, searchable text, quality columns.

Full text: SQLite gets an FTS5 external-content table over asset_text kept in step by triggers;
PostgreSQL a generated, weighted tsvector column with a GIN index ('simple' configuration: no
stemming, so it treats every language alike, as FTS5's unicode61 tokenizer does).

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_FTS_COLUMNS = "caption, ocr, tags"
_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE asset_text_fts USING fts5(caption, ocr, tags, content='asset_text', "
    "content_rowid='asset_id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER asset_text_ai AFTER INSERT ON asset_text BEGIN "
    "INSERT INTO asset_text_fts(rowid, caption, ocr, tags) VALUES (new.asset_id, new.caption, new.ocr, new.tags); END",
    "CREATE TRIGGER asset_text_ad AFTER DELETE ON asset_text BEGIN "
    "INSERT INTO asset_text_fts(asset_text_fts, rowid, caption, ocr, tags) "
    "VALUES ('delete', old.asset_id, old.caption, old.ocr, old.tags); END",
    "CREATE TRIGGER asset_text_au AFTER UPDATE ON asset_text BEGIN "
    "INSERT INTO asset_text_fts(asset_text_fts, rowid, caption, ocr, tags) "
    "VALUES ('delete', old.asset_id, old.caption, old.ocr, old.tags); "
    "INSERT INTO asset_text_fts(rowid, caption, ocr, tags) VALUES (new.asset_id, new.caption, new.ocr, new.tags); END",
]
_PG_FTS = [
    "ALTER TABLE asset_text ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', tags), 'A') || setweight(to_tsvector('simple', caption), 'B') || "
    "setweight(to_tsvector('simple', ocr), 'C')) STORED",
    "CREATE INDEX ix_asset_text_tsv ON asset_text USING gin (tsv)",
]


def upgrade() -> None:
    with op.batch_alter_table('asset') as batch:
        batch.add_column(sa.Column('quality', sa.Float(), nullable=True))
        batch.add_column(sa.Column('aesthetic', sa.Float(), nullable=True))
        batch.add_column(sa.Column('has_text', sa.Boolean(), nullable=True))
    op.create_table('enrichment',
    sa.Column('asset_id', _BIG_ID, nullable=False),
    sa.Column('enricher', sa.String(length=32), nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('revision', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('asset_id', 'enricher')
    )
    op.create_index('ix_enrichment_space', 'enrichment', ['collection_id', 'enricher', 'revision'])
    op.create_table('region',
    sa.Column('id', _BIG_ID, nullable=False),
    sa.Column('asset_id', _BIG_ID, nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('x0', sa.Float(), nullable=False),
    sa.Column('y0', sa.Float(), nullable=False),
    sa.Column('x1', sa.Float(), nullable=False),
    sa.Column('y1', sa.Float(), nullable=False),
    sa.Column('caption', sa.Text(), nullable=True),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_region_asset', 'region', ['asset_id'])
    op.create_index('ix_region_label', 'region', ['collection_id', 'kind', 'label'])
    op.create_table('asset_tag',
    sa.Column('asset_id', _BIG_ID, nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('asset_id', 'tag')
    )
    op.create_index('ix_asset_tag_tag', 'asset_tag', ['collection_id', 'tag'])
    op.create_table('asset_text',
    sa.Column('asset_id', _BIG_ID, nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('caption', sa.Text(), nullable=False),
    sa.Column('ocr', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('asset_id')
    )
    op.create_index('ix_asset_text_collection_id', 'asset_text', ['collection_id'])
    for statement in _SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else _PG_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE asset_text_fts")
    op.drop_table('asset_text')
    op.drop_table('asset_tag')
    op.drop_table('region')
    op.drop_table('enrichment')
    with op.batch_alter_table('asset') as batch:
        batch.drop_column('has_text')
        batch.drop_column('aesthetic')
        batch.drop_column('quality')
