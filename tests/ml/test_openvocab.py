"""Open-vocabulary detection through transformers, with tiny random OWL-ViT / OWLv2 models saved the way
Hugging Face model folders are (tests/support/tiny_owlvit.py) and loaded with `from_pretrained`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.tiny_owlvit import build_tiny_owlvit

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.detect import nms
from photoindex.ml.openvocab import OpenVocabDetector
from photoindex.schemas import Region

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def owlvit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_owlvit(tmp_path_factory.mktemp("models") / "tiny-owlvit")


@pytest.fixture(scope="module")
def owlv2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_owlvit(
        tmp_path_factory.mktemp("models") / "tiny-owlv2", kind="owlv2", layout="processor"
    )


@pytest.fixture(scope="module")
def owlvit(owlvit_dir: Path) -> OpenVocabDetector:
    return OpenVocabDetector.load(owlvit_dir, score_threshold=0.0, nms_iou=1.0, max_regions=100)


def assert_well_formed(regions: list[Region], labels: set[str]) -> None:
    scores = [r.score for r in regions]
    assert scores == sorted(scores, reverse=True)
    for r in regions:
        assert r.label in labels and r.detector_label == r.label and r.detector_score == r.score
        assert 0.0 <= r.box.x0 < r.box.x1 <= 1.0 and 0.0 <= r.box.y0 < r.box.y1 <= 1.0
        assert 0.0 <= r.score <= 1.0


def raw_detections(
    det: OpenVocabDetector, image: Image.Image, labels: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """What the model itself says: per patch, the best label's sigmoid score and the xyxy box (relative
    to the processor's input frame), computed here without the detector's post-processing."""
    queries = [det.template.format(label) for label in labels]
    inputs = det.processor(text=[queries], images=[image.convert("RGB")], return_tensors="pt")
    with torch.inference_mode():
        out = det.model(**inputs)
    scores = torch.sigmoid(out.logits[0].max(dim=-1).values).numpy()
    cx, cy, w, h = out.pred_boxes[0].numpy().T
    return scores, np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def test_loads_from_a_model_folder(owlvit: OpenVocabDetector, owlvit_dir: Path) -> None:
    assert owlvit.name == "tiny-owlvit" and owlvit.model_type == "owlvit" and owlvit.device == "cpu"
    assert len(owlvit.revision) == 12 and int(owlvit.revision, 16) >= 0
    assert owlvit.model_id == f"tiny-owlvit@{owlvit.revision}"
    assert OpenVocabDetector.load(owlvit_dir).revision == owlvit.revision


def test_labels_change_between_calls(owlvit: OpenVocabDetector, photos: dict[str, Image.Image]) -> None:
    image = photos["cat"]
    first = owlvit.detect([image], ["cat", "dog"])[0]
    assert first and {r.label for r in first} <= {"cat", "dog"}
    assert_well_formed(first, {"cat", "dog"})
    second = owlvit.detect([image], ["rocket", "coffee", "person"])[0]
    assert second and {r.label for r in second} <= {"rocket", "coffee", "person"}
    assert_well_formed(second, {"rocket", "coffee", "person"})
    assert [r.score for r in first] != [r.score for r in second]  # the queries reach the model


def test_regions_follow_the_model_outputs(owlvit: OpenVocabDetector, photos: dict[str, Image.Image]) -> None:
    labels = ["cat", "dog", "tree"]
    image = photos["coffee"]
    scores, boxes = raw_detections(owlvit, image, labels)
    regions = owlvit.detect([image], labels)[0]
    top = int(np.argmax(scores))
    assert regions[0].score == pytest.approx(float(scores[top]), abs=1e-5)
    expected = np.clip(boxes[top], 0.0, 1.0)  # OWL-ViT squashes the photo: relative = normalised
    got = regions[0].box
    assert [got.x0, got.y0, got.x1, got.y1] == pytest.approx(expected.tolist(), abs=1e-5)


def test_nms_threshold_and_cap(owlvit_dir: Path, photos: dict[str, Image.Image]) -> None:
    det = OpenVocabDetector.load(owlvit_dir, score_threshold=0.0, nms_iou=0.3, max_regions=5)
    regions = det.detect([photos["astronaut"], photos["rocket"]], ["person", "rocket"])
    assert len(regions) == 2
    for per_image in regions:
        assert 0 < len(per_image) <= 5
        boxes = np.array([[r.box.x0, r.box.y0, r.box.x1, r.box.y1] for r in per_image])
        scores = np.array([r.score for r in per_image])
        classes = np.array([["person", "rocket"].index(r.label) for r in per_image])
        assert len(nms(boxes, scores, 0.3, classes)) == len(per_image)  # nothing left to suppress


def test_score_threshold(owlvit: OpenVocabDetector, owlvit_dir: Path, photos: dict[str, Image.Image]) -> None:
    image, labels = photos["astronaut"], ["person", "rocket"]
    raw, _ = raw_detections(owlvit, image, labels)
    middle = float(np.median(raw))
    det = OpenVocabDetector.load(owlvit_dir, score_threshold=middle, nms_iou=1.0, max_regions=100)
    regions = det.detect([image], labels)[0]
    assert regions and all(r.score > middle for r in regions)
    assert len(regions) <= int((raw > middle).sum()) < len(raw)
    above_all = OpenVocabDetector.load(owlvit_dir, score_threshold=float(raw.max()))
    assert above_all.detect([image], labels) == [[]]


def test_owlv2_boxes_undo_the_square_padding(owlv2_dir: Path, photos: dict[str, Image.Image]) -> None:
    det = OpenVocabDetector.load(owlv2_dir, score_threshold=0.0, nms_iou=1.0, max_regions=100)
    assert det.model_type == "owlv2"
    image = photos["motorcycle"]  # 741 x 500: OWLv2 pads it to 741 x 741
    scores, boxes = raw_detections(det, image, ["motorcycle"])
    regions = det.detect([image], ["motorcycle"])[0]
    assert_well_formed(regions, {"motorcycle"})
    side = max(image.size)
    expected = np.clip(boxes * np.array([side / image.width, side / image.height] * 2), 0.0, 1.0)
    # boxes that lie wholly in the padding (below the photo) are dropped
    inside = (expected[:, 2] > expected[:, 0]) & (expected[:, 3] > expected[:, 1])
    assert len(regions) == int(inside.sum()) < len(scores)
    top = int(np.argmax(np.where(inside, scores, -1.0)))
    assert regions[0].score == pytest.approx(float(scores[top]), abs=1e-5)
    got = regions[0].box
    assert [got.x0, got.y0, got.x1, got.y1] == pytest.approx(expected[top].tolist(), abs=1e-5)


def test_nothing_to_detect(owlvit: OpenVocabDetector, photos: dict[str, Image.Image]) -> None:
    assert owlvit.detect([], ["cat"]) == []
    assert owlvit.detect([photos["cat"], photos["rocket"]], []) == [[], []]
    assert owlvit.detect([photos["cat"]], ["  ", ""]) == [[]]


def test_odd_images(owlvit: OpenVocabDetector, photos: dict[str, Image.Image]) -> None:
    assert owlvit.detect([Image.new("RGB", (0, 0))], ["cat"]) == [[]]
    images = [
        Image.new("RGB", (1, 1)),
        photos["cat"].convert("L"),
        photos["cat"].convert("RGBA"),
        Image.new("RGB", (2000, 5)),
    ]
    for regions in owlvit.detect(images, ["cat"]):
        assert_well_formed(regions, {"cat"})


# --- errors ---------------------------------------------------------------------------------------


def _error(path: Path) -> ModelError:
    with pytest.raises(ModelError) as info:
        OpenVocabDetector.load(path)
    assert info.value.hint
    return info.value


def test_missing_folder(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope").code == ErrorCode.MODEL_NOT_FOUND


def test_broken_folders(tmp_path: Path, owlvit_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _error(tmp_path / "empty").code == ErrorCode.MODEL_INVALID
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert _error(other).code == ErrorCode.MODEL_INVALID
    broken = build_tiny_owlvit(tmp_path / "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    err = _error(broken)
    assert err.code == ErrorCode.MODEL_INVALID and "transformers cannot load" in err.message


def test_without_transformers(monkeypatch: pytest.MonkeyPatch, owlvit_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    err = _error(owlvit_dir)
    assert err.code == ErrorCode.BACKEND_UNAVAILABLE and err.hint and "photoindex[hf]" in err.hint


def test_cuda_without_a_gpu(owlvit_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError) as info:
        OpenVocabDetector.load(owlvit_dir, device="cuda")
    assert info.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert OpenVocabDetector.load(owlvit_dir, device="auto").device == "cpu"
    assert OpenVocabDetector.load(owlvit_dir, device="tensorrt").device == "cpu"
    with pytest.raises(ModelError) as info:
        OpenVocabDetector.load(owlvit_dir, device="tpu")
    assert info.value.code == ErrorCode.CONFIG_INVALID
