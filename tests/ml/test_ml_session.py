from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.session import CPU, CUDA, OrtSession, available_providers, default_providers


def test_cpu_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_DEVICE", "cpu")
    assert default_providers() == [CPU]


def test_auto_puts_cuda_first_only_when_available() -> None:
    providers = default_providers("auto")
    assert providers[-1] == CPU
    assert (CUDA in providers) == (CUDA in available_providers())
    if CUDA in providers:
        assert providers.index(CUDA) < providers.index(CPU)


def test_explicit_gpu_without_cuda_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if CUDA in available_providers():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("PHOTOINDEX_DEVICE", "cuda")
    with pytest.raises(ModelError) as info:
        default_providers()
    assert info.value.code == ErrorCode.BACKEND_UNAVAILABLE and "PHOTOINDEX_DEVICE=cpu" in str(info.value)


def test_unknown_device_is_a_config_error() -> None:
    with pytest.raises(ModelError) as info:
        default_providers("quantum")
    assert info.value.code == ErrorCode.CONFIG_INVALID


def test_session_reports_io_and_casts_inputs(tiny_model: Path) -> None:
    session = OrtSession(tiny_model / "textual" / "model.onnx", providers=[CPU], intra_op_threads=1)
    assert session.input_names == ["text"] and session.providers == [CPU]
    info = session.input("text")
    assert info.dtype is np.int32 and info.static_batch is None and info.shape[1] == 16
    ids = np.zeros((2, 16), dtype=np.int64)  # cast to the graph's int32
    (out,) = session.run({"text": ids})
    assert out.shape == (2, 32) and not out.any()  # all padding -> zero rows


def test_unusable_providers_fall_back_to_cpu(tiny_model: Path) -> None:
    session = OrtSession(tiny_model / "visual" / "model.onnx", providers=["NoSuchExecutionProvider"])
    assert session.providers == [CPU]


def test_broken_or_missing_file_is_model_invalid(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.onnx", tmp_path / "junk.onnx"):
        if path.name == "junk.onnx":
            path.write_bytes(b"definitely not onnx")
        with pytest.raises(ModelError) as info:
            OrtSession(path)
        assert info.value.code == ErrorCode.MODEL_INVALID and path.name in info.value.message
