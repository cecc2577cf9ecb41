"""Per-asset image hashes for duplicate detection (migration 0006 creates the table).

Content is immutable (an asset is its SHA-256), so a row is computed once; `algo` names the hash
recipe, and a row of another recipe counts as missing. The class registers on the catalog's `Base`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from photoindex.store.models import Base, BigId, utcnow

PHASH_ALGO = "dct64-v1"  # 32x32 box-filtered luma of the 256 px thumbnail, 8x8 DCT block, median bits


class AssetHash(Base):
    __tablename__ = "asset_hash"
    __table_args__ = (Index("ix_asset_hash_collection", "collection_id"),)
    asset_id: Mapped[int] = mapped_column(BigId, ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    # The uint64 perceptual hash stored with the same bits as a signed BIGINT
    phash: Mapped[int] = mapped_column(BigInteger)
    # The 8 variants (rotations and mirrors) as 8 little-endian uint64, 64 bytes; [0] is `phash`
    phash_variants: Mapped[bytes] = mapped_column(LargeBinary)
    algo: Mapped[str] = mapped_column(String(16), default=PHASH_ALGO)
    # SHA-256 of the decoded original's pixels; computed only for assets that could be pixel-identical
    pixel_sha256: Mapped[str | None] = mapped_column(String(64))
    computed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
