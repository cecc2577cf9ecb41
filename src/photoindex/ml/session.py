"""The one place that knows ONNX Runtime: execution providers, session options, running a graph.

Device choice: `PHOTOINDEX_DEVICE` (or the `device` argument) is one of
  `auto` (default): CUDA when onnxruntime-gpu sees a GPU, else CPU;
  `cpu`: CPU only;
  `cuda` / `gpu`: CUDA, an error when it is not available;
  `tensorrt`: TensorRT, then CUDA, then CPU (TensorRT builds an engine per input shape on first use,
  which takes minutes, so it is never picked automatically).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from photoindex import metrics
from photoindex.errors import ErrorCode, ModelError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

DEVICE_ENV = "PHOTOINDEX_DEVICE"
_DEVICES = ("auto", "cpu", "cuda", "gpu", "tensorrt")

# ONNX tensor element types -> numpy
_ONNX_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def default_providers(device: str | None = None) -> list[str]:
    """Execution providers in order of preference, for `device` (default: `$PHOTOINDEX_DEVICE` or auto)."""
    choice = (device or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if choice not in _DEVICES:
        raise ModelError(
            f"unknown device {choice!r}",
            code=ErrorCode.CONFIG_INVALID,
            hint=f"set {DEVICE_ENV} to one of: {', '.join(_DEVICES)}",
        )
    available = set(available_providers())
    if choice == "cpu":
        return [CPU]
    if choice in ("cuda", "gpu", "tensorrt") and CUDA not in available:
        raise ModelError(
            f"{DEVICE_ENV}={choice} but ONNX Runtime has no CUDA provider "
            f"(available: {', '.join(sorted(available))})",
            code=ErrorCode.BACKEND_UNAVAILABLE,
            hint=f"install onnxruntime-gpu in place of onnxruntime, or set {DEVICE_ENV}=cpu",
        )
    providers: list[str] = []
    if choice == "tensorrt" and TENSORRT in available:
        providers.append(TENSORRT)
    if CUDA in available:
        providers.append(CUDA)
    providers.append(CPU)
    return providers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _provider_options(provider: str, model_path: Path) -> dict[str, Any]:
    if provider == CPU:
        return {"arena_extend_strategy": "kSameAsRequested"}
    if provider == CUDA:
        return {"arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "HEURISTIC"}
    if provider == TENSORRT:
        cache = model_path.parent / "trt-cache"
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache.as_posix()}
    return {}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str | None, ...]
    onnx_type: str  # e.g. "tensor(float)"

    @property
    def dtype(self) -> type[np.generic] | None:
        return _ONNX_TYPES.get(self.onnx_type)

    @property
    def static_batch(self) -> int | None:
        """The fixed first dimension, or None when the graph takes any batch size."""
        first = self.shape[0] if self.shape else None
        return first if isinstance(first, int) and first > 0 else None


class OrtSession:
    """An ONNX Runtime inference session with photoindex's defaults.

    A file that ONNX Runtime cannot load raises `ModelError(MODEL_INVALID)` naming it. `run` may be
    called from several threads at once.
    """

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
    ) -> None:
        self.path = Path(path)
        wanted = list(providers) if providers is not None else default_providers()
        available = set(available_providers())
        usable = [p for p in wanted if p in available]
        if not usable:
            usable = [CPU]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; ORT warns about many harmless things
        options.inter_op_num_threads = 1
        if intra_op_threads > 0:
            options.intra_op_num_threads = intra_op_threads
        if not self.path.is_file():
            raise ModelError(
                f"model file {self.path} does not exist",
                code=ErrorCode.MODEL_INVALID,
                details={"file": str(self.path)},
            )
        try:
            self._session = ort.InferenceSession(
                self.path.as_posix(),
                sess_options=options,
                providers=usable,
                provider_options=[_provider_options(p, self.path) for p in usable],
            )
        except Exception as exc:  # onnxruntime raises its own exception types for every failure
            raise ModelError(
                f"ONNX Runtime cannot load {self.path}: {_first_line(exc)}",
                code=ErrorCode.MODEL_INVALID,
                details={"file": str(self.path)},
            ) from exc
        self.inputs = [TensorInfo(i.name, tuple(i.shape), i.type) for i in self._session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(o.shape), o.type) for o in self._session.get_outputs()]
        log.debug("loaded %s with providers %s", self.path, self.providers)

    @property
    def providers(self) -> list[str]:
        """The providers the session actually uses (ORT drops those that fail to initialise)."""
        return list(self._session.get_providers())

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def input(self, name: str) -> TensorInfo:
        for info in self.inputs:
            if info.name == name:
                return info
        raise KeyError(name)

    def run(
        self, inputs: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """Run the graph; arrays are cast to the dtypes the graph declares."""
        feed: dict[str, np.ndarray] = {}
        for name, value in inputs.items():
            dtype = self.input(name).dtype
            array = np.asarray(value)
            if dtype is not None and array.dtype != dtype:
                array = array.astype(dtype)
            feed[name] = np.ascontiguousarray(array)
        metrics.model_calls_total.labels(self.path.parent.name or self.path.name).inc()
        return list(self._session.run(list(output_names) if output_names else None, feed))

    def __repr__(self) -> str:
        return f"OrtSession({self.path}, providers={self.providers})"
