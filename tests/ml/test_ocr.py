"""OCR with RapidOCR's real PP-OCR models: text rendered onto real photos is read, photos without text
are skipped by the low-resolution, detection-only gate.

The photos are scikit-image's; the motorcycle is left out of "without text" because it carries a
YAMAHA badge (the full-size detector finds it: 0.78; the 480 px gate does not: 0.00).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from support.text_photos import with_sign

from photoindex.errors import ErrorCode, MediaError, ModelError, PhotoindexError
from photoindex.ml.ocr import (
    DEFAULT_GATE_THRESHOLD,
    FULL_SIZE_GATE_THRESHOLD,
    TextReader,
    gate_score,
    reading_order,
    text_hint,
)
from photoindex.schemas import Box, OcrResult, TextLine

WITHOUT_TEXT = ("astronaut", "coffee", "cat", "rocket")
SIGN = ("OPEN 24 HOURS",)
RECEIPT = ("GROCERY MART", "Milk 2.49", "Bread 3.10", "TOTAL 5.59")


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader.load()


@pytest.fixture(scope="module")
def full_size_gate_reader() -> TextReader:
    return TextReader.load(gate_side_len=None)


# -- drawing text onto photos ---------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont:
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    font = ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    if not isinstance(font, ImageFont.FreeTypeFont):
        pytest.skip("Pillow has no FreeType support: no scalable font to draw text with")
    return font


@dataclass
class Drawn:
    image: Image.Image
    boxes: dict[str, Box]  # each line's ink, normalised


def _draw_block(photo: Image.Image, lines: Sequence[str], *, at: tuple[float, float], size: int,
                paper: tuple[int, int, int] = (250, 250, 245), ink: tuple[int, int, int] = (20, 20, 20)) -> Drawn:
    """Lines of text on a paper rectangle (a sign, a receipt) placed at `at` (fractions of the photo)."""
    image = photo.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    font = _font(size)
    x, y = int(at[0] * image.width), int(at[1] * image.height)
    spacing = int(size * 1.5)
    ink_boxes = [draw.textbbox((x, y + i * spacing), line, font=font) for i, line in enumerate(lines)]
    pad = size // 2
    draw.rectangle((min(b[0] for b in ink_boxes) - pad, ink_boxes[0][1] - pad,
                    max(b[2] for b in ink_boxes) + pad, ink_boxes[-1][3] + pad), fill=paper)
    for i, line in enumerate(lines):
        draw.text((x, y + i * spacing), line, font=font, fill=ink)
    w, h = image.size
    boxes = {line: Box(x0=b[0] / w, y0=b[1] / h, x1=b[2] / w, y1=b[3] / h) for line, b in zip(lines, ink_boxes)}
    return Drawn(image, boxes)


@pytest.fixture(scope="module")
def sign(photos: dict[str, Image.Image]) -> Drawn:
    return _draw_block(photos["coffee"], SIGN, at=(0.08, 0.08), size=36)


@pytest.fixture(scope="module")
def receipt(photos: dict[str, Image.Image]) -> Drawn:
    return _draw_block(photos["rocket"], RECEIPT, at=(0.55, 0.25), size=20)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _find(expected: str, lines: Sequence[TextLine], min_ratio: float = 0.85) -> TextLine | None:
    """The line that reads `expected`, allowing a character of OCR noise in a dozen."""
    best = max(lines, key=lambda line: SequenceMatcher(None, _norm(expected), _norm(line.text)).ratio(),
               default=None)
    if best is None or SequenceMatcher(None, _norm(expected), _norm(best.text)).ratio() < min_ratio:
        return None
    return best


def _covers(found: Box, ink: Box) -> bool:
    """Whether a detected box sits on the drawn ink: it holds the ink (give or take 1 % of the photo),
    is centred on it, and is not much larger (DB boxes carry a margin that grows with the glyphs)."""
    slack = 0.01
    holds = (found.x0 <= ink.x0 + slack and found.y0 <= ink.y0 + slack
             and found.x1 >= ink.x1 - slack and found.y1 >= ink.y1 - slack)
    cx, cy = (found.x0 + found.x1) / 2, (found.y0 + found.y1) / 2
    centred = ink.x0 <= cx <= ink.x1 and ink.y0 <= cy <= ink.y1
    return holds and centred and found.area < 4 * ink.area


def _assert_reads(result: OcrResult, drawn: Drawn) -> None:
    found = []
    for expected, box in drawn.boxes.items():
        line = _find(expected, result.lines)
        assert line is not None, f"{expected!r} not in {[x.text for x in result.lines]}"
        assert _covers(line.box, box), (expected, line.box, box)
        assert 0.5 <= line.confidence <= 1.0
        found.append(result.lines.index(line))
    assert found == sorted(found), "lines are not in reading order"


# -- reading --------------------------------------------------------------------------------------------


def test_load_names_the_bundled_models(reader: TextReader) -> None:
    assert reader.name.startswith("rapidocr-ppocr")
    assert len(reader.revision) == 12 and int(reader.revision, 16) >= 0
    assert reader.model_id == f"{reader.name}@{reader.revision}"


def test_reads_a_sign_and_a_receipt_on_real_photos(reader: TextReader, sign: Drawn, receipt: Drawn) -> None:
    results = reader.read([sign.image, receipt.image])
    assert [r.recognized for r in results] == [True, True]
    _assert_reads(results[0], sign)
    _assert_reads(results[1], receipt)
    assert "open 24 hours" in _norm(results[0].text)
    for result in results:  # read() reports its own full-size detection's score
        assert result.gate_score >= FULL_SIZE_GATE_THRESHOLD


def test_reads_upside_down_text_with_the_angle_classifier(reader: TextReader, sign: Drawn) -> None:
    result = reader.read([sign.image.rotate(180)])[0]
    assert _find(SIGN[0], result.lines) is not None, [x.text for x in result.lines]


def test_boxes_are_normalised_to_the_original_on_a_large_photo(
    reader: TextReader, photos: dict[str, Image.Image]
) -> None:
    drawn = _draw_block(photos["cat"].resize((6000, 4000)), SIGN, at=(0.3, 0.6), size=220)
    result = reader.read([drawn.image])[0]
    _assert_reads(result, drawn)


# -- the gate -------------------------------------------------------------------------------------------


def test_the_gate_skips_photos_without_text(
    reader: TextReader, photos: dict[str, Image.Image], sign: Drawn, receipt: Drawn
) -> None:
    plain = [photos[name] for name in WITHOUT_TEXT]
    results = reader.read_gated([*plain, sign.image, receipt.image], threshold=DEFAULT_GATE_THRESHOLD)
    scores = [r.gate_score for r in results]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[: len(plain)]) < DEFAULT_GATE_THRESHOLD - 0.1, dict(zip(WITHOUT_TEXT, scores))
    assert min(scores[len(plain):]) >= DEFAULT_GATE_THRESHOLD

    skipped = [r for r in results if not r.recognized]
    assert len(skipped) == len(plain)
    assert all(not r.lines and r.text == "" for r in skipped)
    _assert_reads(results[-2], sign)
    _assert_reads(results[-1], receipt)
    assert reader.gate([sign.image, plain[0]]) == pytest.approx([scores[-2], scores[0]])


def test_small_signs_on_1024_px_photos_pass_the_low_resolution_gate(
    reader: TextReader, photos: dict[str, Image.Image]
) -> None:
    """12-14 px glyphs on a 1024 px photo are under 7 px at the 480 px gate, yet still pass it, and the
    full-size read then finds them."""

    def at_1024(name: str) -> Image.Image:
        photo = photos[name]
        return photo.resize((1024, round(1024 * photo.height / photo.width)))

    signs = [with_sign(at_1024("coffee"), ["OPEN 24 HOURS"], size=14),
             with_sign(at_1024("rocket"), ["EXIT", "PLATFORM 2"], size=12)]
    results = reader.read_gated(signs)
    assert [r.recognized for r in results] == [True, True], [r.gate_score for r in results]
    assert min(r.gate_score for r in results) >= DEFAULT_GATE_THRESHOLD
    assert _find("OPEN 24 HOURS", results[0].lines) is not None, results[0].text
    assert _find("PLATFORM 2", results[1].lines) is not None, results[1].text


def test_hints_force_recognition(reader: TextReader, photos: dict[str, Image.Image]) -> None:
    results = reader.read_gated([photos["rocket"], photos["cat"]], threshold=DEFAULT_GATE_THRESHOLD,
                                hints=[True, False])
    assert [r.recognized for r in results] == [True, False]
    assert results[0].gate_score < DEFAULT_GATE_THRESHOLD
    with pytest.raises(PhotoindexError) as err:
        reader.read_gated([photos["rocket"]], threshold=0.5, hints=[True, False])
    assert err.value.code == ErrorCode.INVALID_REQUEST


def _count_detections(reader: TextReader, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The long side of every tensor the detection model is run on from now on."""
    session = reader._det.session
    sides: list[int] = []

    def counting(tensor: np.ndarray) -> np.ndarray:
        sides.append(max(tensor.shape[2:]))
        return session(tensor)

    monkeypatch.setattr(reader._det, "session", counting)
    return sides


def test_gated_reading_detects_small_then_full_size_only_where_the_gate_passes(
    reader: TextReader, photos: dict[str, Image.Image], sign: Drawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    sides = _count_detections(reader, monkeypatch)
    results = reader.read_gated([photos["cat"], sign.image])
    assert [r.recognized for r in results] == [False, True]
    assert len(sides) == 3  # the cat: one low-resolution detection; the sign: low, then full size
    assert max(sides[:2]) <= reader.gate_side_len < sides[2]
    assert results[1].gate_score == pytest.approx(reader.gate([sign.image])[0])  # the gate's score


def test_a_full_size_gate_detects_each_image_once(
    full_size_gate_reader: TextReader, photos: dict[str, Image.Image], sign: Drawn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = full_size_gate_reader
    assert reader.gate_side_len is None and reader.default_threshold == FULL_SIZE_GATE_THRESHOLD
    sides = _count_detections(reader, monkeypatch)
    results = reader.read_gated([photos["cat"], sign.image])
    assert [r.recognized for r in results] == [False, True]
    assert len(sides) == 2 and min(sides) > 480  # the short side is scaled up to 736 px
    _assert_reads(results[1], sign)
    assert reader.read([sign.image])[0] == results[1]  # the gate's detection was reused for the read


def test_gate_side_len_is_checked_and_never_above_the_read() -> None:
    with pytest.raises(ModelError) as err:
        TextReader.load(gate_side_len=16)
    assert err.value.code == ErrorCode.CONFIG_INVALID
    assert TextReader.load(max_side_len=480, gate_side_len=640).gate_side_len is None


def test_gate_score_favours_line_shaped_boxes() -> None:
    line = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], np.float32)
    blob = np.array([[0, 0], [100, 0], [100, 90], [0, 90]], np.float32)
    assert gate_score(np.zeros((0, 4, 2), np.float32), []) == 0.0
    assert gate_score(line[None], [0.9]) == pytest.approx(0.9)
    assert gate_score(blob[None], [0.95]) < 0.15
    assert gate_score(np.stack([line, blob]), [0.6, 0.95]) == pytest.approx(0.6)
    assert gate_score(np.stack([line, line]), [0.6, 0.6]) == pytest.approx(0.6)  # weak boxes do not add up


# -- robustness -----------------------------------------------------------------------------------------


def test_odd_images_do_not_crash(reader: TextReader, photos: dict[str, Image.Image]) -> None:
    cat = photos["cat"]
    odd = [
        Image.new("RGB", (1, 1), (255, 255, 255)),
        Image.new("RGB", (640, 480), (0, 0, 0)),
        Image.new("RGB", (6000, 4000), (200, 200, 200)),
        Image.new("L", (4000, 3), 128),
        Image.new("L", (3, 4000), 128),
        cat.convert("RGBA"),
        cat.convert("P"),
        Image.fromarray(np.asarray(cat.convert("L"), dtype=np.uint16) * 257).convert("I;16"),
    ]
    results = reader.read(odd)
    assert len(results) == len(odd)
    for result in results[:5]:  # nothing to read in flat images
        assert result.gate_score == 0.0 and result.lines == []
    assert reader.gate(odd)[:5] == [0.0] * 5  # the low-resolution gate copes with the same odd shapes
    with pytest.raises(MediaError) as err:
        reader.read([np.zeros((4, 4, 3), np.uint8)])  # type: ignore[list-item]
    assert err.value.code == ErrorCode.UNSUPPORTED_TYPE


def test_the_photo_is_not_modified(reader: TextReader, sign: Drawn) -> None:
    before = sign.image.tobytes()
    reader.read([sign.image])
    assert sign.image.tobytes() == before


def test_one_reader_serves_several_threads(reader: TextReader, sign: Drawn, receipt: Drawn) -> None:
    images = [sign.image, receipt.image]
    expected = [r.model_dump() for r in reader.read(images)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda img: reader.read([img])[0].model_dump(), images))
    assert got == expected


def test_missing_rapidocr_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # what `import rapidocr` sees when not installed
    with pytest.raises(ModelError) as err:
        TextReader.load()
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert "pip install" in (err.value.hint or "") and "rapidocr" in (err.value.hint or "")


def test_asking_for_a_missing_gpu_is_a_clear_error() -> None:
    from photoindex.ml.session import CUDA, available_providers

    if CUDA in available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError) as err:
        TextReader.load(device="cuda")
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE


# -- pure helpers ---------------------------------------------------------------------------------------


def test_reading_order_is_rows_then_columns() -> None:
    def box(x0: float, y0: float, x1: float, y1: float) -> Box:
        return Box(x0=x0, y0=y0, x1=x1, y1=y1)

    boxes = [
        box(0.6, 0.52, 0.9, 0.58),  # price, a little lower than its item
        box(0.1, 0.10, 0.5, 0.16),  # title
        box(0.1, 0.50, 0.4, 0.57),  # item
        box(0.1, 0.80, 0.3, 0.85),  # total
    ]
    assert reading_order(boxes) == [1, 2, 0, 3]
    assert reading_order([]) == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["street sign"], True),
        (["Receipts"], True),
        (["a restaurant menu on a wooden table"], True),
        (["car", "License Plate"], True),
        (["whiteboard"], True),
        (["screenshot"], True),
        (["cat", "sofa", "window"], False),
        (["dinner plate", "fork"], False),
        (["beach", "sunset"], False),
        ([], False),
    ],
)
def test_text_hint(words: list[str], expected: bool) -> None:
    assert text_hint(words) is expected
