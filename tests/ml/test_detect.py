"""Object detection with the real YOLOX-Nano and NanoDet-m weights on real photos (scikit-image's)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.detect import ObjectDetector, nms
from photoindex.schemas import Region

CPU = ["CPUExecutionProvider"]

# photo -> (COCO label it must find, least share of the photo its box covers, most)
EXPECTED = {
    "astronaut": ("person", 0.4, 1.0),
    "coffee": ("cup", 0.1, 0.6),
    "motorcycle": ("motorcycle", 0.4, 1.0),
    "cat": ("cat", 0.5, 1.0),
}


@pytest.fixture(scope="module")
def yolox_dir(shared_models: Path) -> Path:
    return shared_models / "yolox-nano-coco"


@pytest.fixture(scope="module")
def yolox(yolox_dir: Path) -> ObjectDetector:
    return ObjectDetector.load(yolox_dir, providers=CPU, intra_op_threads=1)


@pytest.fixture(scope="module", params=["yolox-nano-coco", "nanodet-m-coco"])
def detector(request: pytest.FixtureRequest, shared_models: Path) -> ObjectDetector:
    return ObjectDetector.load(shared_models / request.param, providers=CPU, intra_op_threads=1)


def best(regions: list[Region], label: str) -> Region | None:
    return next((r for r in regions if r.label == label), None)


def assert_well_formed(regions: list[Region]) -> None:
    scores = [r.score for r in regions]
    assert scores == sorted(scores, reverse=True)
    for r in regions:
        assert 0.0 <= r.box.x0 < r.box.x1 <= 1.0 and 0.0 <= r.box.y0 < r.box.y1 <= 1.0
        assert r.detector_label == r.label and r.detector_score == r.score


# --- acceptance: the objects in photos that packages carry ------------------------------------------


@pytest.mark.parametrize("photo", sorted(EXPECTED))
def test_finds_the_object_in_each_photo(
    detector: ObjectDetector, photos: dict[str, Image.Image], photo: str
) -> None:
    label, least, most = EXPECTED[photo]
    regions = detector.detect([photos[photo]])[0]
    assert_well_formed(regions)
    found = best(regions, label)
    assert found is not None, f"{detector.family} found {[(r.label, round(r.score, 2)) for r in regions]}"
    assert found.score >= 0.5
    assert least <= found.box.area <= most


def test_boxes_sit_where_the_objects_are(yolox: ObjectDetector, photos: dict[str, Image.Image]) -> None:
    person = best(yolox.detect([photos["astronaut"]])[0], "person")
    assert person is not None
    # the astronaut fills the left two thirds of the frame, head to bottom edge
    assert person.box.x0 < 0.1 and 0.6 < person.box.x1 < 0.85
    assert person.box.y0 < 0.15 and person.box.y1 > 0.9
    cup = best(yolox.detect([photos["coffee"]])[0], "cup")
    assert cup is not None
    cx, cy = (cup.box.x0 + cup.box.x1) / 2, (cup.box.y0 + cup.box.y1) / 2
    assert 0.35 < cx < 0.65 and 0.2 < cy < 0.55


def test_rocket_has_no_false_person_or_animal(yolox: ObjectDetector, photos: dict[str, Image.Image]) -> None:
    labels = {r.label for r in yolox.detect([photos["rocket"]])[0]}
    assert not labels & {"person", "cat", "dog", "cup"}


def test_model_attributes(yolox: ObjectDetector, yolox_dir: Path) -> None:
    assert yolox.name == "yolox-nano-coco"
    assert yolox.family == "yolox"
    assert yolox.input_size == (416, 416)
    assert len(yolox.classes) == 80 and yolox.classes[0] == "person" and "motorcycle" in yolox.classes
    assert len(yolox.revision) == 12 and int(yolox.revision, 16) >= 0
    assert yolox.model_id == f"yolox-nano-coco@{yolox.revision}"
    again = ObjectDetector.load(yolox_dir / "yolox_nano_416x416.onnx", providers=CPU)
    assert again.revision == yolox.revision and again.name == yolox.name


def test_revision_follows_the_files(yolox: ObjectDetector, yolox_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "yolox-copy"
    shutil.copytree(yolox_dir, copy, copy_function=shutil.copyfile)  # the shared folder is read-only
    copy.chmod(0o755)
    assert ObjectDetector.load(copy, providers=CPU).revision == yolox.revision  # content, not path
    with (copy / "coco80_classes.txt").open("a") as fh:
        fh.write("\n")  # same names, other bytes: another revision
    assert ObjectDetector.load(copy, providers=CPU).revision != yolox.revision
    (copy / "REVISION").write_text("0123abcd\n")
    assert ObjectDetector.load(copy, providers=CPU).revision == "0123abcd"


def test_nanodet_attributes(shared_models: Path) -> None:
    det = ObjectDetector.load(shared_models / "nanodet-m-coco", providers=CPU)
    assert det.family == "nanodet" and det.input_size == (320, 320) and det.nms_iou == 0.6


# --- batching -------------------------------------------------------------------------------------


def _same(a: list[list[Region]], b: list[list[Region]]) -> None:
    assert [[r.label for r in rs] for rs in a] == [[r.label for r in rs] for rs in b]
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)
            assert x.box.x0 == pytest.approx(y.box.x0, abs=1e-4) and x.box.y1 == pytest.approx(
                y.box.y1, abs=1e-4
            )


def test_batch_fixed_at_one_loops(yolox: ObjectDetector, photos: dict[str, Image.Image]) -> None:
    images = [photos[k] for k in ("cat", "coffee", "motorcycle")]
    assert yolox.session.inputs[0].static_batch == 1
    _same(yolox.detect(images), [yolox.detect([img])[0] for img in images])
    assert yolox.detect([]) == []


def _batchable_copy(src: Path, dest: Path) -> Path:
    """The real YOLOX-Nano with a free batch axis: its three Reshapes keep the batch dim (0) instead of 1."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(next(src.glob("*.onnx")).as_posix())
    shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for init in model.graph.initializer:
        if init.name in shapes:
            value = numpy_helper.to_array(init).copy()
            value[0] = 0
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    for tensor in (model.graph.input[0], model.graph.output[0]):
        tensor.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    dest.mkdir()
    onnx.save(model, (dest / "yolox_nano_dynamic.onnx").as_posix())
    shutil.copy(src / "coco80_classes.txt", dest / "coco80_classes.txt")
    return dest


def test_batchable_graph_runs_batches(
    yolox: ObjectDetector,
    yolox_dir: Path,
    photos: dict[str, Image.Image],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batched = ObjectDetector.load(_batchable_copy(yolox_dir, tmp_path / "dyn"), providers=CPU)
    assert batched.session.inputs[0].static_batch is None
    runs: list[int] = []
    original = batched.session.run

    def counting_run(feeds: Mapping[str, np.ndarray], *args: Any) -> list[np.ndarray]:
        runs.append(next(iter(feeds.values())).shape[0])
        return original(feeds, *args)

    monkeypatch.setattr(batched.session, "run", counting_run)
    images = [photos[k] for k in ("cat", "coffee", "motorcycle", "astronaut")]
    got = batched.detect(images)
    assert runs == [4]  # one run for the four photos
    _same(got, yolox.detect(images))


# --- odd inputs -----------------------------------------------------------------------------------


def test_other_image_modes(yolox: ObjectDetector, photos: dict[str, Image.Image]) -> None:
    gray = photos["astronaut"].convert("L")
    assert best(yolox.detect([gray])[0], "person") is not None
    rgba = photos["cat"].convert("RGBA")
    assert best(yolox.detect([rgba])[0], "cat") is not None
    palette = photos["motorcycle"].convert("P")
    assert best(yolox.detect([palette])[0], "motorcycle") is not None


def test_image_without_pixels(yolox: ObjectDetector, photos: dict[str, Image.Image]) -> None:
    out = yolox.detect([Image.new("RGB", (0, 0)), photos["cat"], Image.new("RGB", (5, 0))])
    assert out[0] == [] and out[2] == [] and best(out[1], "cat") is not None


@pytest.mark.parametrize("size", [(1, 1), (5000, 7), (7, 5000), (3, 900)])
def test_tiny_and_extreme_shapes(detector: ObjectDetector, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    regions = detector.detect([img])[0]
    assert_well_formed(regions)


def test_object_in_a_wide_strip_keeps_its_place(
    yolox: ObjectDetector, photos: dict[str, Image.Image]
) -> None:
    # the cat photo on the right third of a wide grey strip: the box must land on the right third
    cat = photos["cat"]
    strip = Image.new("RGB", (cat.width * 3, cat.height), (114, 114, 114))
    strip.paste(cat, (cat.width * 2, 0))
    found = best(yolox.detect([strip])[0], "cat")
    assert found is not None
    assert found.box.x0 > 0.6 and found.box.x1 > 0.95


def test_thresholds_and_cap(yolox_dir: Path, photos: dict[str, Image.Image]) -> None:
    strict = ObjectDetector.load(yolox_dir, providers=CPU, score_threshold=0.99)
    assert strict.detect([photos["cat"]]) == [[]]
    loose = ObjectDetector.load(yolox_dir, providers=CPU, score_threshold=0.01, max_regions=3)
    regions = loose.detect([photos["coffee"]])[0]
    assert len(regions) == 3 and regions[0].label == "cup"
    assert_well_formed(regions)


def test_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0, 3]
    assert nms(boxes, scores, 0.45, np.array([0, 0, 1, 0])).tolist() == [0, 2, 3]  # other class survives
    assert nms(boxes[:0], scores[:0], 0.45).tolist() == []


# --- broken model folders -------------------------------------------------------------------------


def _folder(
    tmp_path: Path, yolox_dir: Path, *, graph: bytes | None = None, classes: str | None = None
) -> Path:
    folder = tmp_path / "detector"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(
        graph if graph is not None else (yolox_dir / "yolox_nano_416x416.onnx").read_bytes()
    )
    text = classes if classes is not None else (yolox_dir / "coco80_classes.txt").read_text()
    (folder / "classes.txt").write_text(text)
    return folder


def _load_error(path: Path) -> ModelError:
    with pytest.raises(ModelError) as info:
        ObjectDetector.load(path, providers=CPU)
    assert info.value.hint
    return info.value


def test_missing_folder_or_graph(tmp_path: Path) -> None:
    assert _load_error(tmp_path / "nope").code == ErrorCode.MODEL_NOT_FOUND
    (tmp_path / "empty").mkdir()
    assert _load_error(tmp_path / "empty").code == ErrorCode.MODEL_NOT_FOUND


@pytest.mark.parametrize("content", [b"", b"\x08\x07not a protobuf" * 50], ids=["empty", "corrupt"])
def test_empty_or_corrupt_graph(tmp_path: Path, yolox_dir: Path, content: bytes) -> None:
    err = _load_error(_folder(tmp_path, yolox_dir, graph=content))
    assert err.code == ErrorCode.MODEL_INVALID and "model.onnx" in str(err)


def test_bad_class_files(tmp_path: Path, yolox_dir: Path) -> None:
    folder = _folder(tmp_path, yolox_dir, classes="person\ncar\n")  # 2 names for 80 outputs
    assert _load_error(folder).code == ErrorCode.MODEL_INVALID
    (folder / "classes.txt").write_text("person\n\ncar\n")
    assert _load_error(folder).code == ErrorCode.MODEL_INVALID
    (folder / "classes.txt").unlink()
    assert _load_error(folder).code == ErrorCode.MODEL_INVALID


def test_two_graphs_or_not_a_detector(tmp_path: Path, yolox_dir: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    folder = _folder(tmp_path, yolox_dir)
    (folder / "other.onnx").write_bytes(b"x")
    assert _load_error(folder).code == ErrorCode.MODEL_INVALID
    (folder / "other.onnx").unlink()
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["out"])],
        "identity",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, (folder / "model.onnx").as_posix())
    err = _load_error(folder)
    assert err.code == ErrorCode.MODEL_INVALID and "neither" in err.message
