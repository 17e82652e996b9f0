"""onnxruntime itself: provider names resolved against what is installed, its exception classes."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from onnxruntime.capi import onnxruntime_pybind11_state as state

from cam_rt.runtime import ConfigError, ProviderFallbackWarning, resolve_providers
from cam_rt.runtime.backend.ort import first_line, ort_errors, raised_by_onnxruntime

GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_providers() -> None:
    assert resolve_providers(["auto"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers(["auto"], GPU) == GPU
    assert resolve_providers(["AUTO"], GPU[1:]) == GPU[1:]
    ov = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["auto"], ov) == ov  # onnxruntime-openvino installed


def test_explicit_providers_case_insensitive_with_cpu_fallback() -> None:
    assert resolve_providers(["CUDA"], GPU) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["cpu", "cuda"], GPU) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.warns(ProviderFallbackWarning, match="'cuda' .* not available.*using CPU"):
        assert resolve_providers(["cuda"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_unknown_provider_lists_names() -> None:
    with pytest.raises(ConfigError, match="'tpu' is unknown: use auto or one of tensorrt, cuda"):
        resolve_providers(["tpu"], ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="no execution provider"):
        resolve_providers([" "], ["CPUExecutionProvider"])


def test_resolve_providers_takes_loose_types() -> None:
    cpu = ["CPUExecutionProvider"]
    assert resolve_providers(("auto", "cpu"), cpu) == cpu
    assert resolve_providers("auto", ["CUDAExecutionProvider", *cpu]) == [
        "CUDAExecutionProvider",
        *cpu,
    ]


def test_ort_errors_are_onnxruntime_own_classes() -> None:
    """They subclass Exception directly, no common base: all of them, and nothing else."""
    errors = ort_errors()
    assert state.InvalidArgument in errors and state.Fail in errors and state.EPFail in errors
    assert all(e.__module__ == state.__name__ for e in errors)
    assert not any(issubclass(bug, errors) for bug in (ZeroDivisionError, ValueError, TypeError))
    # what a real session raises for an input of the wrong rank is one of them
    graph = onnxruntime.InferenceSession(_identity_model(), providers=["CPUExecutionProvider"])
    with pytest.raises(errors) as caught:
        graph.run(None, {"x": np.zeros((2, 2), np.float32)})
    assert first_line(caught.value) and "\n" not in first_line(caught.value)
    assert first_line(ValueError()) == "ValueError"


def test_runtime_errors_count_as_onnxruntime_only_from_inside_it() -> None:
    """IO-bound runs fail with a plain RuntimeError ("Error in execution: ...") from
    onnxruntime's C++ layer: that is onnxruntime failing; a RuntimeError raised elsewhere is not."""
    graph = onnxruntime.InferenceSession(_identity_model(), providers=["CPUExecutionProvider"])
    binding = graph.io_binding()
    binding.bind_cpu_input("x", np.zeros((2, 2), np.float32))
    binding.bind_output("y", "cpu", 0)
    with pytest.raises(RuntimeError, match="Error in execution") as caught:
        graph.run_with_iobinding(binding)
    assert not isinstance(caught.value, ort_errors())
    assert raised_by_onnxruntime(caught.value)
    try:
        raise RuntimeError("not onnxruntime")
    except RuntimeError as exc:
        assert not raised_by_onnxruntime(exc)
    assert not raised_by_onnxruntime(RuntimeError("never raised"))


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
