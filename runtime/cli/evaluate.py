"""``cam-rt eval``: CAM seeds scored against ground-truth masks (mIoU per background threshold)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ..batch.io import check_output
from ..batch.report import report_path, write_eval_report
from ..batch.runner import load_labels
from ..errors import ConfigError
from ..explain import ClassSelection, Explainer
from ..tools.evaluate import EvalItem, evaluate, parse_thresholds, voc_items, write_report
from .entry import quiet_notes
from .groups import expand, group
from .options import DeviceOptions, ExplainOptions, ModelFile, open_model
from .progress import Progress

__all__ = ["eval_command", "parse_thresholds"]  # parse_thresholds: tools.evaluate's


def _items(
    voc_root: Path | None, split_name: str, images: Path | None, masks: Path | None
) -> list[EvalItem]:
    """The images and masks of --voc-root and --split, or of --images and --masks."""
    split_file = Path(split_name)
    if voc_root is not None:
        if not split_file.is_file():
            split_file = voc_root / "ImageSets" / "Segmentation" / f"{split_name}.txt"
        return voc_items(voc_root / "JPEGImages", voc_root / "SegmentationClass", split_file)
    if images is not None and masks is not None:
        if split_name != "train" and not split_file.is_file():
            raise ConfigError(f"--split {split_name} is not a file of image ids")
        return voc_items(images, masks, split_file if split_file.is_file() else None)
    raise ConfigError("give --voc-root DIR, or both --images DIR and --masks DIR")


@expand
def eval_command(
    model: ModelFile,
    voc_root: Annotated[
        Path | None,
        typer.Option("--voc-root", help="A VOC-layout folder (JPEGImages/, SegmentationClass/)."),
    ] = None,
    split_name: Annotated[
        str,
        typer.Option("--split", help="Split name under ImageSets/Segmentation, or a file of ids."),
    ] = "train",
    images: Annotated[
        Path | None, typer.Option("--images", help="Image folder (other layouts).")
    ] = None,
    masks: Annotated[Path | None, typer.Option("--masks", help="Mask folder (other layouts).")] = (
        None
    ),
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Image-level labels file (default: classes in each mask)."),
    ] = None,
    predicted_labels: Annotated[
        bool,
        typer.Option(
            "--predicted-labels", help="Explain the predicted classes, not the true ones."
        ),
    ] = False,
    thresholds: Annotated[
        str, typer.Option("--thresholds", help="Background thresholds swept.")
    ] = "0.10:0.40:0.01",
    explain: ExplainOptions = group(ExplainOptions, skip=["classes", "threshold", "alpha"]),
    device: DeviceOptions = group(DeviceOptions, skip=["threads"]),
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON.")
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option("--report", help="Also write an HTML page (a file, or FOLDER/index.html)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Score CAM seeds against ground-truth masks (OC-CSE protocol: mIoU, best threshold)."""
    items = _items(voc_root, split_name, images, masks)
    selection = ClassSelection("predicted" if predicted_labels else "all")
    explain_config = replace(explain.config(), classes=selection)
    explainer = Explainer(open_model(model, device.session_config(explain_config)), explain_config)
    label_map = None
    if labels is not None:
        label_map = {k: list(v) for k, v in load_labels(labels).items()}
        missing = [item.name for item in items if item.name not in label_map]
        if missing:
            raise ConfigError(
                f"--labels {labels} has no entry for {len(missing)} image(s), first "
                f"'{missing[0]}': give labels for every image of the split"
            )
        for values in label_map.values():
            explainer.resolve_labels(values)
    sweep = parse_thresholds(thresholds)
    if json_file is not None:
        check_output(json_file)  # a bad --json path is refused before the evaluation
    if report_file is not None:
        check_output(report_path(report_file))
    quiet_notes(quiet)
    progress = Progress(quiet)
    with progress:
        report = evaluate(
            explainer,
            items,
            sweep,
            predicted_labels,
            label_map,
            progress.event,
        )
    tta = explain_config.tta
    report.extra["tta"] = (
        None if tta is None else {"scales": list(tta.scales), "flip": tta.flip, "mode": tta.mode}
    )
    typer.echo(report.table())
    if json_file is not None:
        write_report(json_file, report)
    if report_file is not None:
        settings = [
            ("model", str(model)),
            ("images", str(voc_root or images)),
            ("masks", str(masks or (voc_root and voc_root / "SegmentationClass"))),
            ("labels", str(labels) if labels else str(report.extra.get("labels"))),
            ("thresholds", thresholds),
            ("TTA", json.dumps(report.extra.get("tta"))),
        ]
        write_eval_report(report_file, report.to_json(), settings)
    if report.failed:  # as for run: 2 = some inputs failed (they are named in the report)
        raise typer.Exit(2)
