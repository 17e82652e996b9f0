"""``cam-rt triton``: the model repository parses with Triton's schema and says what was asked;
the client example gives a local run's maps through a stand-in for the server."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.backend import remote
from cam_rt.runtime.backend.remote import RemoteSession, SessionLike, read_metadata_file
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.errors import ConfigError, ModelLoadError, ProviderError
from cam_rt.runtime.plan import warmup_shapes
from cam_rt.runtime.tools.triton import TritonConfig, write_repository
from tests.onnx_models import channel_model


def _parse(path: Path) -> object:
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _client(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _local_infer(model: Path, maps_output: str):  # type: ignore[no-untyped-def]
    """What Triton's ONNX Runtime backend does with a request: run the file as it is."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert batch.dtype == np.float32 and batch.shape[-1] == 3
        scores, maps = session.run(["scores", maps_output], {"images": batch})
        return scores, maps

    return infer


def test_tensorrt_repository_parses_and_states_the_plan(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "cams.onnx", channels=3, offset=0.2)
    config = TritonConfig(
        name="cams",
        max_batch=8,
        tensorrt=True,
        fp16=True,
        trt_cache="/models/cache",
        min_side=64,
        max_side=512,
        warmup_sizes=((224, 224), (160, 240)),
    )
    folder = write_repository(model, tmp_path / "repo", config)
    assert (folder / "1" / "model.onnx").read_bytes() == model.read_bytes()
    parsed = _parse(folder / "config.pbtxt")
    assert parsed.name == "cams" and parsed.backend == "onnxruntime"  # type: ignore[attr-defined]
    assert parsed.max_batch_size == 8  # type: ignore[attr-defined]
    (inp,) = parsed.input  # type: ignore[attr-defined]
    assert inp.name == "images" and list(inp.dims) == [-1, -1, 3]
    outputs = {o.name: list(o.dims) for o in parsed.output}  # type: ignore[attr-defined]
    assert outputs == {"scores": [3], "cams": [-1, -1, 3]}
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 100  # type: ignore[attr-defined]
    (group,) = parsed.instance_group  # type: ignore[attr-defined]
    assert group.count == 1 and group.kind == group.KIND_GPU
    (trt,) = parsed.optimization.execution_accelerators.gpu_execution_accelerator  # type: ignore[attr-defined]
    params = dict(trt.parameters)
    assert trt.name == "tensorrt" and params["precision_mode"] == "FP16"
    assert params["trt_engine_cache_path"] == params["trt_timing_cache_path"] == "/models/cache"
    profile = config.profile()
    for key, value in profile.ort_strings("images").items():
        assert params[key] == value
    assert profile.max[0] == 8 and profile.min[1] == 32  # 64 px images at TTA scale 0.5
    assert profile.max[1] == profile.max[2] == 1024  # 512 px images at scale 2
    # Warm-up: every input shape the client sends for those image sizes, inside the profile.
    expected = warmup_shapes(config.explain, config.warmup_sizes)
    warm = [(w.batch_size, *list(w.inputs["images"].dims)[:2]) for w in parsed.model_warmup]  # type: ignore[attr-defined]
    assert warm == [(n, h, w) for n, h, w in expected] and len(warm) >= 8
    assert all(profile.contains(*shape) for shape in warm)
    assert all(w.inputs["images"].zero_data for w in parsed.model_warmup)  # type: ignore[attr-defined]


def test_cpu_and_cuda_repositories(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=2)
    cpu = _parse(
        write_repository(model, tmp_path / "r", TritonConfig(name="c", kind="cpu", instances=2))
        / "config.pbtxt"
    )
    (group,) = cpu.instance_group  # type: ignore[attr-defined]
    assert group.kind == group.KIND_CPU and group.count == 2
    assert not cpu.HasField("optimization") and not cpu.parameters  # type: ignore[attr-defined]
    cuda = _parse(write_repository(model, tmp_path / "r", TritonConfig(name="g")) / "config.pbtxt")
    assert cuda.parameters["cudnn_conv_algo_search"].string_value == "1"  # type: ignore[attr-defined]
    assert not cuda.model_warmup  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["cam", "features"])
def test_client_maps_equal_a_local_run(tmp_path: Path, kind: str) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3, kind=kind, stride=1)
    config = TritonConfig(name="demo", max_batch=4, tta=TTAConfig((0.5, 1.0, 1.5), True))
    write_repository(model, tmp_path / "repo", config)
    client = _client(tmp_path / "repo" / "demo_client.py")
    maps_output = "cams" if kind == "cam" else "features"
    remote = client.make_explainer(
        _local_infer(tmp_path / "repo" / "demo" / "1" / "model.onnx", maps_output)
    )
    assert isinstance(remote.session, SessionLike) and remote.batch_flips  # GPU instances
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((37, 52), (64, 64))]
    local = Explainer(CamSession(model), client.EXPLAIN)
    for a, b in zip(local.explain(images), remote.explain(images), strict=True):
        assert a.class_ids == b.class_ids
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-6)
        np.testing.assert_allclose(b.maps, a.maps, atol=1e-6)


def test_remote_session_checks_what_comes_back(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3)
    folder = write_repository(model, tmp_path / "repo", TritonConfig(name="m"))
    meta = read_metadata_file(folder / "cam_rt_metadata.json")
    assert meta == CamSession(model).metadata

    def wrong(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, h, w, _ = batch.shape
        return np.zeros((n, 2), np.float32), np.zeros((n, h, w, 2), np.float32)

    explainer = Explainer(RemoteSession(wrong, meta), ExplainConfig(classes=ClassSelection("all")))
    with pytest.raises(ModelLoadError, match="expected \\(N, 3\\)"):
        explainer.explain(np.zeros((8, 8, 3), np.uint8))

    def down(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise ConnectionError("connection refused")

    with pytest.raises(ProviderError, match="remote model call failed.*connection refused"):
        Explainer(RemoteSession(down, meta)).explain(np.zeros((8, 8, 3), np.uint8))
    (folder / "bad.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="no metadata object"):
        read_metadata_file(folder / "bad.json")


def test_default_tta_is_tta_configs_own() -> None:
    (tta,) = [f for f in dataclasses.fields(TritonConfig) if f.name == "tta"]
    assert tta.default_factory is TTAConfig and TritonConfig().tta == TTAConfig()


def test_refusals(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=2)
    write_repository(model, tmp_path / "repo", TritonConfig(name="m"))
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        write_repository(model, tmp_path / "repo", TritonConfig(name="m"))
    with pytest.raises(ConfigError, match="add --tensorrt"):
        TritonConfig(fp16=True)
    with pytest.raises(ConfigError, match="outside the image sides"):
        TritonConfig(max_side=256, warmup_sizes=((300, 300),))
    with pytest.raises(ConfigError, match="needs GPU instances"):
        TritonConfig(kind="cpu", tensorrt=True)
    with pytest.raises(ConfigError, match="letters, digits"):
        TritonConfig(name="a b")


def test_cli_triton(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=2)
    args = ["triton", str(model), "-o", str(tmp_path / "repo"), "--tensorrt", "--max-batch", "4"]
    result = CliRunner().invoke(get_app(), [*args, "--warmup-sizes", "128,96x160"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "TensorRT fp32" in result.stdout
    parsed = _parse(tmp_path / "repo" / "m" / "config.pbtxt")
    assert parsed.max_batch_size == 4 and len(parsed.model_warmup) > 0  # type: ignore[attr-defined]
    again = CliRunner().invoke(get_app(), args)
    assert again.exit_code == 1 and "already exists" in again.output
    assert "Traceback" not in again.output


def test_max_batch_one_sends_flip_twins_apart(tmp_path: Path) -> None:
    """max_batch_size 1 cannot take an image and its flip in one request: the plan says so."""
    model = channel_model(tmp_path / "m.onnx", channels=2)
    config = TritonConfig(name="one", max_batch=1, tensorrt=True, warmup_sizes=((64, 64),))
    assert not config.explain.batch_flips and config.profile().max[0] == 1
    parsed = _parse(write_repository(model, tmp_path / "r", config) / "config.pbtxt")
    assert parsed.model_warmup and all(w.batch_size == 1 for w in parsed.model_warmup)  # type: ignore[attr-defined]
    client = _client(tmp_path / "r" / "one_client.py")
    explainer = client.make_explainer(
        _local_infer(tmp_path / "r" / "one" / "1" / "model.onnx", "cams")
    )
    assert not explainer.batch_flips


def _fake_tritonclient(infer: Any, requests: list[tuple[Any, ...]]) -> ModuleType:
    """A stand-in for ``tritonclient.http``: the calls the client makes, answered by ``infer``."""
    http = ModuleType("tritonclient.http")

    class InferInput:
        def __init__(self, name: str, shape: list[int], dtype: str) -> None:
            self.name, self.shape, self.dtype = name, shape, dtype

        def set_data_from_numpy(self, data: np.ndarray) -> None:
            self.data = data

    class InferRequestedOutput:
        def __init__(self, name: str) -> None:
            self.name = name

    class Result:
        def __init__(self, outputs: dict[str, np.ndarray]) -> None:
            self.outputs = outputs

        def as_numpy(self, name: str) -> np.ndarray:
            return self.outputs[name]

    class InferenceServerClient:
        def __init__(self, url: str) -> None:
            self.url = url

        def infer(self, model: str, inputs: list[Any], outputs: list[Any]) -> Result:
            (inp,) = inputs
            names = tuple(o.name for o in outputs)
            requests.append((self.url, model, inp.name, tuple(inp.shape), inp.dtype, names))
            return Result(dict(zip(names, infer(inp.data), strict=True)))

    http.InferInput = InferInput  # type: ignore[attr-defined]
    http.InferRequestedOutput = InferRequestedOutput  # type: ignore[attr-defined]
    http.InferenceServerClient = InferenceServerClient  # type: ignore[attr-defined]
    return http


def test_client_reads_its_metadata_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata file is read when the client loads, not again per request or explainer."""
    model = channel_model(tmp_path / "m.onnx", channels=3, kind="features")
    folder = write_repository(model, tmp_path / "repo", TritonConfig(name="f", tta=None))
    reads: list[Path] = []

    def counting(path: Path) -> Any:
        reads.append(Path(path))
        return read_metadata_file(path)

    monkeypatch.setattr(remote, "read_metadata_file", counting)
    requests: list[tuple[Any, ...]] = []
    http = _fake_tritonclient(_local_infer(folder / "1" / "model.onnx", "features"), requests)
    package = ModuleType("tritonclient")
    package.http = http  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tritonclient", package)
    monkeypatch.setitem(sys.modules, "tritonclient.http", http)
    client = _client(tmp_path / "repo" / "f_client.py")
    assert reads == [folder / "cam_rt_metadata.json"]
    image = np.random.default_rng(2).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    (local,) = Explainer(CamSession(model), client.EXPLAIN).explain(image)
    for _ in range(2):  # two explainers, two requests each
        explainer = client.make_explainer(client.triton_infer("server:8000"))
        for _ in range(2):
            (result,) = explainer.explain(image)
            np.testing.assert_allclose(result.scores, local.scores, atol=1e-6)
    assert len(reads) == 1 and len(requests) == 4
    assert requests[0] == (
        "server:8000",
        "f",
        "images",
        (1, 20, 28, 3),
        "FP32",
        ("scores", "features"),
    )


def test_output_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    """-o naming a file (or a path under one) used to end in a NotADirectoryError traceback."""
    model = channel_model(tmp_path / "m.onnx", channels=2)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    for out in (notes, notes / "repo", model):
        result = CliRunner().invoke(get_app(), ["triton", str(model), "-o", str(out)])
        assert result.exit_code == 1, result.output
        file = notes if out != model else model
        assert result.stderr == (
            f"cam-rt: error: -o {out}: {file} is a file, not a folder: give a folder for the "
            "model repository (it is created if missing)\n"
        )
    assert notes.read_text() == "keep" and model.stat().st_size > 0


def test_output_that_would_overwrite_the_model_is_refused(tmp_path: Path) -> None:
    """The model's own place in a repository, or a model file named like the model folder."""
    inside = tmp_path / "repo" / "m" / "1"
    inside.mkdir(parents=True)
    model = channel_model(inside / "model.onnx", channels=2)
    before = model.read_bytes()
    with pytest.raises(ConfigError) as info:
        write_repository(model, tmp_path / "repo", TritonConfig(name="m"))
    assert str(info.value) == (
        f"-o {tmp_path / 'repo'} with the name 'm' would overwrite the model itself ({model}): "
        "write the repository to another folder or give another --name"
    )
    bare = channel_model(tmp_path / "bare", channels=2)  # no suffix: its stem is its name
    result = CliRunner().invoke(get_app(), ["triton", str(bare), "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"cam-rt: error: -o {tmp_path} with the name 'bare' would ")
    assert "Traceback" not in result.output
    assert model.read_bytes() == before and bare.is_file()
    folder = write_repository(model, tmp_path / "elsewhere", TritonConfig(name="m"))
    assert (folder / "1" / "model.onnx").read_bytes() == before  # another folder: fine


def test_trained_size_plans_the_profile_and_the_warm_up(tmp_path: Path) -> None:
    """A model that records its trained size (224x224) gets every image resized to it (input
    size ``model``, the default): the TensorRT profile and the warm-up requests hold only the
    TTA scales of 224, whatever the side range and warm-up image sizes."""
    model = channel_model(tmp_path / "cams.onnx", channels=3, input_size=(224, 224))
    config = TritonConfig(
        name="cams",
        tensorrt=True,
        tta=TTAConfig((0.5, 1.0, 2.0)),
        min_side=32,
        max_side=1024,
        warmup_sizes=((100, 150), (300, 400)),
    )
    folder = write_repository(model, tmp_path / "repo", config)
    parsed = _parse(folder / "config.pbtxt")
    warm = {tuple(list(w.inputs["images"].dims)[:2]) for w in parsed.model_warmup}  # type: ignore[attr-defined]
    assert warm == {(112, 112), (224, 224), (448, 448)}
    profile = config.profile(read_metadata_file(folder / "cam_rt_metadata.json"))
    assert (profile.min[1:], profile.opt[1:], profile.max[1:]) == (
        (112, 112),
        (224, 224),
        (448, 448),
    )
    (trt,) = parsed.optimization.execution_accelerators.gpu_execution_accelerator  # type: ignore[attr-defined]
    params = dict(trt.parameters)
    for key, value in profile.ort_strings("images").items():
        assert params[key] == value
    assert config.profile().max[1:] == (2048, 2048)  # the file not read: images' own sizes
