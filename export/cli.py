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


def export_command(
    source: str = typer.Argument(
        ...,
        help="A .keras file, a whole-model .h5, a Keras-2 SavedModel folder, or a built-in "
        "architecture name (resnet38d).",
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
) -> None:
    """Export a Keras classifier to an ONNX file with scores and CAMs, checked against Keras."""
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
    )
    log = None if quiet else (lambda msg: typer.echo(msg, err=True))
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
