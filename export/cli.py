"""The ``cam-rt export`` command, registered into the ``cam-rt`` app as a plug-in.

Only typer is imported here; TensorFlow is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]


def _parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    from cam_rt.runtime.errors import ConfigError

    sizes = []
    for part in text.split(","):
        try:
            h, w = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ConfigError(
                f"check size '{part}' is not HEIGHTxWIDTH: write e.g. --check-sizes 97x131,160x224"
            ) from None
        sizes.append((h, w))
    return tuple(sizes)


def _parse_triple(option: str, text: str | None) -> tuple[float, float, float] | None:
    from cam_rt.runtime.errors import ConfigError

    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ConfigError(
            f"{option} '{text}' is not three numbers R,G,B: e.g. --mean 123.675,116.28,103.53"
        )
    return values  # type: ignore[return-value]


def export_command(
    source: str = typer.Argument(
        ...,
        help="A .keras file, a whole-model .h5, a Keras-2 SavedModel folder, a built-in "
        "architecture name (resnet38d), or an .onnx classifier (PyTorch, timm, tf2onnx).",
    ),
    output: Path = typer.Option(..., "-o", "--output-file", help="The ONNX file to write."),
    weights: str | None = typer.Option(
        None, "--weights", help="Built-in architectures: a resnet38d-tf .h5 file, or 'none'."
    ),
    output_kind: str = typer.Option(
        "cam", "--output", help="cam: scores + CAMs in the graph; features: scores + features."
    ),
    feature_layer: str | None = typer.Option(
        None, "--feature-layer", help="Layer whose output are the (h, w, K) feature maps."
    ),
    score_layer: str | None = typer.Option(
        None, "--score-layer", help="Layer whose output are the pooled pre-activation scores."
    ),
    activation: str | None = typer.Option(
        None, "--activation", help="sigmoid or softmax (default: read from the model)."
    ),
    preprocess: str | None = typer.Option(
        None, "--preprocess", help="torch, caffe, tf or none (default: torch for resnet38d)."
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="'voc' or a text file with one class name per line."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    fp16: bool = typer.Option(False, "--fp16", help="fp16 weights and compute, fp32 I/O."),
    external_data: bool = typer.Option(
        False,
        "--external-data",
        help="Weights in a side file NAME.<id>.data: less memory and faster loading for big "
        "models; keep both files together.",
    ),
    check_sizes: str | None = typer.Option(
        None,
        "--check-sizes",
        help="HxW sizes the export is checked at (default: 97x131,160x224; for a model with a "
        "trained size, that size and one near it).",
    ),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Largest relative error accepted (1e-3 fp32, 2e-2 fp16)."
    ),
    mean: str | None = typer.Option(
        None,
        "--mean",
        help="Per-channel mean R,G,B on the 0..255 scale, in the model's channel order, "
        "folded into the graph as (x - mean) / std (torchvision: 123.675,116.28,103.53).",
    ),
    std: str | None = typer.Option(
        None,
        "--std",
        help="Per-channel std on the 0..255 scale (torchvision: 58.395,57.12,57.375).",
    ),
    bgr: bool = typer.Option(False, "--bgr", help="The model takes BGR: swap the channels first."),
    feature_node: str | None = typer.Option(
        None,
        "--feature-node",
        help="ONNX sources: the feature tensor (or node) of the head to explain, when there are "
        "several.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
) -> None:
    """Export a Keras classifier or import an ONNX classifier (.onnx from PyTorch, timm,
    tf2onnx) to a cam-rt ONNX file with scores and CAMs, checked against the original."""
    from .api import export_model
    from .config import ExportConfig

    config = ExportConfig(
        output=output_kind,  # type: ignore[arg-type]
        feature_layer=feature_layer,
        score_layer=score_layer,
        activation=activation,  # type: ignore[arg-type]
        preprocess=preprocess,
        classes=classes,
        weights=weights,
        opset=opset,
        fp16=fp16,
        external_data=external_data,
        check_sizes=_parse_sizes(check_sizes) if check_sizes else None,
        tolerance=tolerance,
        mean=_parse_triple("--mean", mean),
        std=_parse_triple("--std", std),
        bgr=bgr,
        feature_node=feature_node,
    )
    log = None if quiet else (lambda msg: typer.echo(msg, err=True))
    if source.lower().endswith(".onnx"):
        from .onnx_import import import_onnx

        if weights or feature_layer or score_layer:
            from cam_rt.runtime.errors import ConfigError

            raise ConfigError(
                "--weights, --feature-layer and --score-layer are for Keras models; an ONNX "
                "source takes --feature-node"
            )
        report = import_onnx(source, output, config, log=log)
    else:
        if feature_node:
            from cam_rt.runtime.errors import ConfigError

            raise ConfigError(
                "--feature-node is for ONNX sources; Keras models take --feature-layer"
            )
        report = export_model(source, output, config, log=log)
    if not quiet:
        typer.echo(
            f"{report.path}: {report.metadata.num_classes} classes, output '{config.output}', "
            f"max relative error {report.max_rel_error:.2g} (max abs {report.max_abs_error:.2g}), "
            f"method {report.metadata.method}"
        )


def register(app: Any) -> None:
    """Add ``export`` to the ``cam-rt`` typer app (the ``cam_rt.commands`` entry point)."""
    app.command("export")(export_command)
