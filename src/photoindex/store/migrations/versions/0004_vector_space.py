"""Per-space vector counters (row count, highest row id), backfilled from the embedding table.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vector_space',
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('top_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('collection_id', 'model')
    )
    op.execute("INSERT INTO vector_space (collection_id, model, rows, top_id) "
               "SELECT collection_id, model, count(*), max(id) FROM embedding GROUP BY collection_id, model")


def downgrade() -> None:
    op.drop_table('vector_space')
