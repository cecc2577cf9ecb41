"""A tiny aesthetic head in the on-disk format `photoindex.ml.quality.AestheticHead` loads.

No aesthetic predictor weights can be fetched here, so tests build one with `onnx.helper`:
`model.onnx` computes score = embedding @ w + b with w the unit vector along `direction`. For unit
embeddings the raw score is the cosine with `direction` plus `bias`, so the photos most like
`direction` score highest; `config.json` maps the raw range [-1, 1] onto 0..10 by default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OPSET = 17
IR_VERSION = 8


def build_tiny_aesthetic(
    dest: Path,
    direction: np.ndarray,
    *,
    embedding_model: str = "tiny-clip",
    bias: float = 0.0,
    scale: tuple[float, float] | None = (-1.0, 1.0),
    flat_output: bool = False,
    config_dim: int | None = None,
) -> Path:
    """Write `dest/model.onnx` and `dest/config.json`; returns `dest`.

    `flat_output` makes the graph return [N] instead of [N, 1]; `config_dim` writes a dim into the
    config that differs from the graph's (to test the mismatch check)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(direction, dtype=np.float32).reshape(-1)
    w = w / max(float(np.linalg.norm(w)), 1e-12)
    dim = int(w.shape[0])
    nodes = [
        helper.make_node("MatMul", ["embedding", "w"], ["raw"]),
        helper.make_node("Add", ["raw", "b"], ["score2d" if flat_output else "score"]),
    ]
    initializers = [
        numpy_helper.from_array(w.reshape(dim, 1), "w"),
        numpy_helper.from_array(np.array([bias], dtype=np.float32), "b"),
    ]
    if flat_output:
        nodes.append(helper.make_node("Reshape", ["score2d", "flat"], ["score"]))
        initializers.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"))
    output_shape: list[int | str] = ["N"] if flat_output else ["N", 1]
    graph = helper.make_graph(
        nodes,
        "tiny_aesthetic",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, output_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)

    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(model, dest / "model.onnx")
    config: dict[str, object] = {"embedding_model": embedding_model, "dim": config_dim or dim}
    if scale is not None:
        config["scale"] = list(scale)
    (dest / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return dest
