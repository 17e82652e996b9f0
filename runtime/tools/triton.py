"""A Triton Inference Server model repository for a cam-rt file (``cam-rt triton``).

``write_repository(model, out, config)`` writes::

    OUT/<name>/config.pbtxt             the ONNX Runtime backend's configuration
    OUT/<name>/1/model.onnx             the model, unchanged
    OUT/<name>/cam_rt_metadata.json     the model's cam-rt metadata (classes, activation, ...)
    OUT/<name>_client.py                a client: cam-rt's TTA and normalization around Triton

The configuration: dynamic batch (``max_batch_size``), height and width (``-1``); dynamic
batching; instances on the GPU or the CPU; with ``tensorrt``, the TensorRT accelerator with the
optimization profile planned from the TTA scales and the image side range exactly as for a local
TensorRT session (so no request leaves it), fp16, and the engine and timing caches; warm-up
requests for the input shapes of the TTA passes of ``warmup_sizes``. Triton cannot run on the
development machine (no GPU, no server): the tests parse the file with Triton's own protobuf
schema and run the client against a local stand-in.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backend.providers import ShapeProfile
from ..batch.io import write_atomic
from ..errors import ConfigError
from ..explain import ExplainConfig
from ..maps.tta import TTAConfig
from ..metadata import INPUT_NAME, SCORES_NAME, ModelMetadata
from ..plan import shape_profile, warmup_shapes

__all__ = ["TritonConfig", "model_config_text", "write_repository"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class TritonConfig:
    """``cam-rt triton`` options."""

    name: str = ""  # the model's name in the repository; default: the file's stem
    max_batch: int = 8
    kind: Literal["gpu", "cpu"] = "gpu"
    instances: int = 1
    queue_delay_us: int = 100
    tensorrt: bool = False
    fp16: bool = False
    trt_cache: str = ""  # a folder on the server for engines and timing caches
    tta: TTAConfig | None = field(default_factory=TTAConfig)
    bucket: int = 0
    min_side: int = 32
    max_side: int = 1024
    warmup_sizes: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.name and not _NAME.match(self.name):
            raise ConfigError(
                f"model name '{self.name}' must use letters, digits, '_', '.' or '-' only"
            )
        for key in ("max_batch", "instances", "min_side", "max_side"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key} {value!r} must be an integer >= 1")
        if self.queue_delay_us < 0:
            raise ConfigError(f"queue delay {self.queue_delay_us} must be >= 0 microseconds")
        if self.kind not in ("gpu", "cpu"):
            raise ConfigError(f"instance kind '{self.kind}' is unknown: use gpu or cpu")
        if self.tensorrt and self.kind != "gpu":
            raise ConfigError("--tensorrt needs GPU instances: drop --cpu")
        if self.fp16 and not self.tensorrt:
            raise ConfigError(
                "--fp16 sets TensorRT's precision: add --tensorrt, or serve a file exported "
                "with 'cam-rt export --fp16'"
            )
        if self.trt_cache and not self.tensorrt:
            raise ConfigError("--trt-cache is for TensorRT engines: add --tensorrt")
        if self.min_side > self.max_side:
            raise ConfigError(f"--min-side {self.min_side} is above --max-side {self.max_side}")
        for h, w in self.warmup_sizes:
            if not (self.min_side <= h <= self.max_side and self.min_side <= w <= self.max_side):
                raise ConfigError(
                    f"warm-up size {h}x{w} lies outside the image sides "
                    f"{self.min_side}..{self.max_side}: widen --min-side/--max-side"
                )

    @property
    def explain(self) -> ExplainConfig:
        """How the client batches: flip twins together on GPU instances."""
        return ExplainConfig(
            tta=self.tta,
            batch_size=self.max_batch,
            bucket=self.bucket,
            # a flip twin travels in its image's request: that needs room for two
            batch_flips=self.kind == "gpu" and self.max_batch >= 2,
        )

    def profile(self, metadata: ModelMetadata | None = None) -> ShapeProfile:
        """The TensorRT profile: the client's inputs for the side range (at the model's trained
        size when ``metadata`` records one), and any batch Triton's dynamic batcher can form
        (up to ``max_batch``)."""
        planned = shape_profile(self.explain, self.min_side, self.max_side, metadata)
        top = (max(planned.max[0], self.max_batch), planned.max[1], planned.max[2])
        return ShapeProfile(planned.min, planned.opt, top)


def _warmup_shapes(
    config: TritonConfig, metadata: ModelMetadata | None
) -> list[tuple[int, int, int]]:
    if not config.warmup_sizes:
        return []
    return warmup_shapes(config.explain, config.warmup_sizes, metadata=metadata)


def _pb(value: Any, indent: int = 0) -> str:
    """Protobuf text format of nested dicts/lists (a list of scalars on one line)."""
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key} {{\n{_pb(item, indent + 1)}{pad}}}")
        elif isinstance(item, list) and item and isinstance(item[0], dict):
            for entry in item:
                lines.append(f"{pad}{key} {{\n{_pb(entry, indent + 1)}{pad}}}")
        elif isinstance(item, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in item)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return "".join(line + "\n" for line in lines)


class _Enum(str):
    """A protobuf enum value: written bare, not quoted."""


def _scalar(value: Any) -> str:
    if isinstance(value, _Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def model_config_text(
    name: str,
    num_classes: int,
    maps_output: str,
    maps_channels: int,
    config: TritonConfig,
    metadata: ModelMetadata | None = None,
) -> str:
    """The ``config.pbtxt`` of the model; ``metadata``, the model's, plans the TensorRT profile
    and the warm-up requests at its trained input size where it has one."""
    spec: dict[str, Any] = {
        "name": name,
        "backend": "onnxruntime",
        "max_batch_size": config.max_batch,
        "input": [{"name": INPUT_NAME, "data_type": _Enum("TYPE_FP32"), "dims": [-1, -1, 3]}],
        "output": [
            {"name": SCORES_NAME, "data_type": _Enum("TYPE_FP32"), "dims": [num_classes]},
            {"name": maps_output, "data_type": _Enum("TYPE_FP32"), "dims": [-1, -1, maps_channels]},
        ],
        "dynamic_batching": {"max_queue_delay_microseconds": config.queue_delay_us},
        "instance_group": [
            {
                "count": config.instances,
                "kind": _Enum("KIND_GPU" if config.kind == "gpu" else "KIND_CPU"),
            }
        ],
    }
    if config.tensorrt:
        strings = config.profile(metadata).ort_strings(INPUT_NAME)
        params = {
            "precision_mode": "FP16" if config.fp16 else "FP32",
            **strings,
        }
        if config.trt_cache:
            params.update(
                trt_engine_cache_enable="1",
                trt_engine_cache_path=config.trt_cache,
                trt_timing_cache_enable="1",
                trt_timing_cache_path=config.trt_cache,
            )
        spec["optimization"] = {
            "execution_accelerators": {
                "gpu_execution_accelerator": [
                    {
                        "name": "tensorrt",
                        "parameters": [{"key": k, "value": v} for k, v in params.items()],
                    }
                ]
            }
        }
    elif config.kind == "gpu" and not config.bucket:
        # cuDNN's HEURISTIC algorithm choice (1): no exhaustive search for every new TTA shape
        # (with buckets the shapes are few and warmed, so the default EXHAUSTIVE search pays).
        spec["parameters"] = [{"key": "cudnn_conv_algo_search", "value": {"string_value": "1"}}]
    warm = _warmup_shapes(config, metadata)
    if warm:
        spec["model_warmup"] = [
            {
                "name": f"{n}x{h}x{w}",
                "batch_size": n,
                "inputs": {
                    "key": INPUT_NAME,
                    "value": {
                        "data_type": _Enum("TYPE_FP32"),
                        "dims": [h, w, 3],
                        "zero_data": True,
                    },
                },
            }
            for n, h, w in warm
            if n <= config.max_batch
        ]
    return _pb(spec)


def write_repository(model: str | Path, out: str | Path, config: TritonConfig) -> Path:
    """Write the model repository entry for ``model``; returns the model's folder."""
    from ..backend.session import CamSession, SessionConfig

    source, root = Path(model), Path(out)
    session = CamSession(source, SessionConfig(providers=("cpu",)))  # validates the file
    meta = session.metadata
    name = config.name or re.sub(r"[^A-Za-z0-9_.-]", "_", source.stem)
    folder = root / name
    _check_output(
        root, folder, name, meta.external_data, [source, source.parent / meta.external_data]
    )
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(
            f"{folder} already exists and is not empty: choose another --name or remove it"
        )
    outputs = {o["name"]: o["shape"] for o in session.describe_outputs()}
    maps_output = "cams" if meta.output == "cam" else "features"
    channels = outputs[maps_output][-1]
    if not isinstance(channels, int):
        raise ConfigError(f"{source}: the channel count of '{maps_output}' is not fixed")
    text = model_config_text(name, meta.num_classes, maps_output, channels, config, meta)
    props = meta.to_props()
    (folder / "1").mkdir(parents=True, exist_ok=True)
    if meta.external_data:  # the weights' side file sits beside the model, under its name
        staged = folder / "1" / f".{meta.external_data}.tmp"
        shutil.copyfile(source.parent / meta.external_data, staged)
        staged.replace(folder / "1" / meta.external_data)
    staged = folder / "1" / ".model.onnx.tmp"
    shutil.copyfile(source, staged)
    staged.replace(folder / "1" / "model.onnx")
    write_atomic(folder / "cam_rt_metadata.json", (json.dumps(props, indent=2) + "\n").encode())
    write_atomic(root / f"{name}_client.py", client_source(name, config).encode())
    write_atomic(folder / "config.pbtxt", text.encode())  # last: Triton loads complete models
    return folder


def _check_output(root: Path, folder: Path, name: str, side: str, sources: list[Path]) -> None:
    """ConfigError unless ``root`` is (or can be made) a folder and writing the repository
    there (the model's folder, ``side`` its weights' side file) leaves the model's own files
    (``sources``) alone."""
    for parent in (root, *root.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"-o {root}: {parent} is a file, not a folder: give a folder for the model "
                    "repository (it is created if missing)"
                )
            break
    version = folder / "1"
    names = ("cam_rt_metadata.json", "config.pbtxt")
    written = [folder, version, version / "model.onnx", root / f"{name}_client.py"]
    written += [folder / n for n in names] + ([version / side] if side else [])
    own = {p.resolve() for p in sources if p.is_file()}
    if any(p.resolve() in own for p in written):
        raise ConfigError(
            f"-o {root} with the name '{name}' would overwrite the model itself "
            f"({sources[0]}): write the repository to another folder or give another --name"
        )


def client_source(name: str, config: TritonConfig) -> str:
    """The client example for the model, with the repository's TTA settings."""
    tta = config.tta
    tta_code = (
        "None"
        if tta is None
        else f"TTAConfig({tta.scales!r}, flip={tta.flip!r}, mode={tta.mode!r})"
    )
    return _CLIENT.format(
        name=name,
        tta=tta_code,
        batch=config.max_batch,
        bucket=config.bucket,
        gpu=config.explain.batch_flips,
    )


_CLIENT = '''"""Client for the Triton model '{name}' (written by cam-rt): cam-rt's TTA,
normalization and class selection around Triton calls.

    pip install 'cam-rt[cpu]' 'tritonclient[http]'


    python {name}_client.py image.png [more.png ...] --url localhost:8000 -o maps/

Each image's maps are those a local 'cam-rt run' computes with the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cam_rt.runtime import ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.batch.io import read_image
from cam_rt.runtime.backend.remote import RemoteSession, read_metadata_file

MODEL = "{name}"
HERE = Path(__file__).resolve().parent
# Read once, when the client loads: classes, activation, which maps output the model has.
METADATA = read_metadata_file(HERE / MODEL / "cam_rt_metadata.json")
MAPS_OUTPUT = "cams" if METADATA.output == "cam" else "features"
EXPLAIN = ExplainConfig(
    tta={tta},
    classes=ClassSelection("predicted"),
    batch_size={batch},
    bucket={bucket},
)


def triton_infer(url: str):
    """infer(batch) -> (scores, maps) through Triton's HTTP API."""
    import tritonclient.http as http

    client = http.InferenceServerClient(url)
    outputs = [http.InferRequestedOutput(name) for name in ("scores", MAPS_OUTPUT)]

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request = http.InferInput("images", list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        result = client.infer(MODEL, [request], outputs=outputs)
        return result.as_numpy("scores"), result.as_numpy(MAPS_OUTPUT)

    return infer


def make_explainer(infer, config: ExplainConfig = EXPLAIN) -> Explainer:
    """An Explainer whose model runs where ``infer`` sends it."""
    session = RemoteSession(infer, METADATA, on_gpu={gpu})
    # on_gpu: flip twins in one request (the server's max_batch_size allows it)
    return Explainer(session, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--url", default="localhost:8000")
    parser.add_argument("-o", "--outdir", type=Path, default=Path("maps"))
    args = parser.parse_args()
    explainer = make_explainer(triton_infer(args.url))
    args.outdir.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        (result,) = explainer.explain(read_image(path).pixels)
        np.savez_compressed(
            args.outdir / f"{{path.stem}}.maps.npz",
            maps=result.maps.astype(np.float16),
            class_names=np.array(result.class_names),
            scores=result.scores,
        )
        print(path, ", ".join(result.class_names))


if __name__ == "__main__":
    main()
'''


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``224,320x480`` -> ((224, 224), (320, 480))."""
    from .bench import parse_size

    return tuple(parse_size(part) for part in text.split(",") if part.strip())


def describe(folder: Path, config: TritonConfig) -> str:
    """One line saying what was written (``folder``, from :func:`write_repository`)."""
    from ..backend.remote import read_metadata_file

    warm = _warmup_shapes(config, read_metadata_file(folder / "cam_rt_metadata.json"))
    tail = f", {len(warm)} warm-up shapes" if warm else ""
    trt = f", TensorRT {'fp16' if config.fp16 else 'fp32'}" if config.tensorrt else ""
    return f"wrote {folder} (max batch {config.max_batch}, {config.kind}{trt}{tail})"
