"""Per-asset image hashes for duplicate detection: perceptual hash with its rotation / mirror
variants, and the pixel hash of the decoded original.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('asset_hash',
    sa.Column('asset_id', _BIG_ID, nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('phash', sa.BigInteger(), nullable=False),
    sa.Column('phash_variants', sa.LargeBinary(), nullable=False),
    sa.Column('algo', sa.String(length=16), nullable=False),
    sa.Column('pixel_sha256', sa.String(length=64), nullable=True),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('asset_id')
    )
    op.create_index('ix_asset_hash_collection', 'asset_hash', ['collection_id'])


def downgrade() -> None:
    op.drop_index('ix_asset_hash_collection', table_name='asset_hash')
    op.drop_table('asset_hash')
