"""Commands about a model file and the machine: ``info``, ``doctor``, ``quantize`` (an int8
copy) and ``triton`` (a Triton Inference Server model repository)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..batch.io import write_atomic
from ..errors import ConfigError
from ..tools.doctor import environment_checks, model_info
from ..tools.quantize import (
    Method,
    QuantizeConfig,
    load_calibration,
    quantize_model,
    report_dict,
)
from ..tools.triton import TritonConfig, describe, parse_sizes, write_repository
from .groups import choice, expand, group
from .options import DeviceOptions, ExplainOptions, ModelFile

__all__ = ["doctor_command", "info_command", "quantize_command", "triton_command"]

_QUANTIZE = QuantizeConfig()
_TRITON = TritonConfig()


def info_command(
    model: ModelFile,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Inputs, outputs, metadata and classes of a model, and the providers this machine has."""
    info = model_info(model)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key in ("inputs", "outputs"):
            for io in value:
                shape = "x".join(str(d) for d in io["shape"])
                typer.echo(f"{key[:-1]:<18} {io['name']} ({shape}) {io['type']}")
        elif key == "classes":
            typer.echo(f"{'classes':<18} {len(value)}: {', '.join(value)}")
        else:
            typer.echo(f"{key:<18} {value}")


def doctor_command() -> None:
    """Check the environment: ONNX Runtime packages and providers, GPU libraries, export."""
    checks = environment_checks()
    for check in checks:
        typer.echo(f"{check.level:>7}  {check.name:<13} {check.detail}")
    if any(c.level == "error" for c in checks):
        raise typer.Exit(1)


@expand
def quantize_command(
    model: Annotated[Path, typer.Argument(help="An fp32 ONNX file written by 'cam-rt export'.")],
    calibration: Annotated[
        Path, typer.Option("--calibration", help="Folder of images like those the model will see.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The int8 file to write.")],
    images: Annotated[int, typer.Option("--images", help="Calibration images used (at most).")] = (
        _QUANTIZE.max_images
    ),
    explain: ExplainOptions = group(
        ExplainOptions,
        only=["tta", "scales"],
        help={"tta": "Calibrate and check at every TTA input size."},
        tta=_QUANTIZE.tta is not None,
    ),
    method: Annotated[Method, choice("--method", help="minmax, entropy or percentile.")] = (
        _QUANTIZE.method
    ),
    head_float: Annotated[
        bool,
        typer.Option(
            "--head-float/--quantize-head", help="Keep the CAM head (last Conv) in float."
        ),
    ] = _QUANTIZE.keep_head_float,
    floor: Annotated[
        float,
        typer.Option("--floor", help="Refuse below this mean cosine similarity of the maps."),
    ] = _QUANTIZE.floor,
    force: Annotated[
        bool, typer.Option("--force", help="Write the file even below the floor.")
    ] = _QUANTIZE.force,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON.")
    ] = None,
) -> None:
    """int8 static quantization (QDQ, per-channel) calibrated on real images, written only if
    its maps stay close to the float model's."""
    config = QuantizeConfig(
        tta=explain.tta_config(),
        max_images=images,
        method=method,
        keep_head_float=head_float,
        floor=floor,
        force=force,
    )
    if not calibration.is_dir():
        raise ConfigError(f"--calibration {calibration} is not a folder of images")
    pictures = load_calibration(
        calibration, config.max_images, lambda text: typer.echo(f"cam-rt: {text}", err=True)
    )
    report = quantize_model(
        model, pictures, output, config, lambda text: typer.echo(f"cam-rt: {text}", err=True)
    )
    f = report.fidelity
    typer.echo(
        f"{output}: {report.bytes_before / 2**20:.1f} -> {report.bytes_after / 2**20:.1f} MiB; "
        f"maps vs float: cosine {f.mean_cosine:.4f} (floor {floor}), max abs {f.max_abs:.3f}, "
        f"mean abs {f.mean_abs:.4f}, top-1 agreement {f.top1_agreement:.0%}"
    )
    if json_file is not None:
        write_atomic(json_file, (json.dumps(report_dict(report), indent=2) + "\n").encode())


@expand
def triton_command(
    model: ModelFile,
    output: Annotated[Path, typer.Option("-o", "--output", help="The model repository folder.")],
    name: Annotated[str, typer.Option("--name", help="Model name (default: the file's stem).")] = (
        _TRITON.name
    ),
    max_batch: Annotated[int, typer.Option("--max-batch", help="Triton's max_batch_size.")] = (
        _TRITON.max_batch
    ),
    cpu: Annotated[bool, typer.Option("--cpu", help="CPU instances instead of GPU ones.")] = (
        _TRITON.kind == "cpu"
    ),
    instances: Annotated[
        int, typer.Option("--instances", help="Model instances per device.")
    ] = _TRITON.instances,
    tensorrt: Annotated[bool, typer.Option("--tensorrt", help="The TensorRT accelerator.")] = (
        _TRITON.tensorrt
    ),
    fp16: Annotated[bool, typer.Option("--fp16", help="TensorRT fp16 engines.")] = _TRITON.fp16,
    trt_cache: Annotated[
        str,
        typer.Option(
            "--trt-cache", help="A folder on the server for TensorRT engine and timing caches."
        ),
    ] = _TRITON.trt_cache,
    explain: ExplainOptions = group(
        ExplainOptions,
        only=["tta", "scales", "bucket"],
        help={"tta": "Plan shapes for multi-scale TTA."},
        tta=_TRITON.tta is not None,
        bucket=_TRITON.bucket,
    ),
    device: DeviceOptions = group(
        DeviceOptions,
        only=["min_side", "max_side"],
        min_side=_TRITON.min_side,
        max_side=_TRITON.max_side,
    ),
    warmup_sizes: Annotated[
        str,
        typer.Option(
            "--warmup-sizes",
            help="Image sizes whose TTA shapes Triton runs at load, e.g. 224,320x480.",
        ),
    ] = ",".join(f"{h}x{w}" for h, w in _TRITON.warmup_sizes),
) -> None:
    """Write a Triton Inference Server model repository (ONNX Runtime backend) for the model,
    with a client that runs cam-rt's TTA around Triton calls."""
    config = TritonConfig(
        name=name,
        max_batch=max_batch,
        kind="cpu" if cpu else "gpu",
        instances=instances,
        tensorrt=tensorrt,
        fp16=fp16,
        trt_cache=trt_cache,
        tta=explain.tta_config(),
        bucket=explain.bucket,
        min_side=device.min_side,
        max_side=device.max_side,
        warmup_sizes=parse_sizes(warmup_sizes),
    )
    folder = write_repository(model, output, config)
    typer.echo(describe(folder, config))
