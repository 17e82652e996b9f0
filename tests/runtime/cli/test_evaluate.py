"""`cam-rt eval` (cli/evaluate.py): its option parsing and the refusals before any model run.
The scores themselves are tested in tests/runtime/tools/test_evaluate.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cam_rt.runtime.cli import get_app
from cam_rt.runtime.cli.evaluate import parse_thresholds
from cam_rt.runtime.errors import ConfigError


def test_threshold_ranges() -> None:
    assert parse_thresholds("0:0.25:0.1") == (0.0, 0.1, 0.2)
    assert parse_thresholds("0.10:0.40:0.01")[-1] == 0.39
    assert parse_thresholds("0.2,0.3") == (0.2, 0.3)
    with pytest.raises(ConfigError, match="START:STOP:STEP"):
        parse_thresholds("0.4:0.1:0.1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --voc-root DIR, or both --images DIR and --masks DIR"),
        (["--images", "."], "give --voc-root DIR, or both --images DIR and --masks DIR"),
        (
            ["--images", ".", "--masks", ".", "--split", "val"],
            "--split val is not a file of image ids",
        ),
        (["--voc-root", "."], "images folder ./JPEGImages does not exist"),
    ],
)
def test_refused_before_the_model_opens(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("")
    args = [str(tmp_path) if a == "." else a for a in args]
    result = CliRunner().invoke(get_app(), ["eval", str(tmp_path / "none.onnx"), *args])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"cam-rt: error: {message.replace('./', f'{tmp_path}/')}"]
