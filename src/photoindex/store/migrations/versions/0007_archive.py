"""Archive batches and items: every curation move, for undo; an index to find archived assets.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_PATH = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table('archive_batch',
    sa.Column('id', _BIG_ID, nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('undone_at', sa.DateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('manifest_path', sa.Text(), nullable=True),
    sa.Column('manifests', sa.JSON(), nullable=False),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_archive_batch_collection', 'archive_batch', ['collection_id', 'id'])
    op.create_table('archive_item',
    sa.Column('id', _BIG_ID, nullable=False),
    sa.Column('batch_id', _BIG_ID, nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.BigInteger(), nullable=False),
    sa.Column('src', _PATH, nullable=False),
    sa.Column('dst', _PATH, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('moved_at', sa.DateTime(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['archive_batch.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_archive_item_batch', 'archive_item', ['batch_id', 'id'])
    op.create_index('ix_archive_item_asset', 'archive_item', ['asset_id'])
    # search leaves out archived assets: an equality seek per query instead of a scan of the collection
    op.create_index('ix_asset_collection_status', 'asset', ['collection_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_asset_collection_status', 'asset')
    op.drop_table('archive_item')
    op.drop_table('archive_batch')
