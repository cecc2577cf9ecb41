"""Real photos with words drawn on them, for OCR and text-search tests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from PIL import Image, ImageDraw, ImageFont


def font(size: int) -> ImageFont.FreeTypeFont:
    loaded = ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    if not isinstance(loaded, ImageFont.FreeTypeFont):
        pytest.skip("Pillow has no FreeType support: no scalable font to draw text with")
    return loaded


def with_sign(photo: Image.Image, lines: Sequence[str], *, size: int | None = None) -> Image.Image:
    """The photo with a white sign of dark text in its upper left part."""
    out = photo.convert("RGB").copy()
    size = size or max(18, out.width // 18)
    face = font(size)
    draw = ImageDraw.Draw(out)
    x, y = out.width // 12, out.height // 10
    spacing = int(size * 1.4)
    boxes = [draw.textbbox((x, y + i * spacing), line, font=face) for i, line in enumerate(lines)]
    pad = size // 2
    draw.rectangle((min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad,
                    max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad), fill=(250, 250, 245))
    for i, line in enumerate(lines):
        draw.text((x, y + i * spacing), line, font=face, fill=(20, 20, 30))
    return out
