"""How the command prints warnings and notes (cli/entry.py), and ``-q`` silencing notes."""

from __future__ import annotations

import warnings

import pytest

from cam_rt.runtime.backend.precision import ChoiceNotice
from cam_rt.runtime.cli import entry


def test_notes_and_warnings_are_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    entry._show_warning(ChoiceNotice("auto chose openvino fp32"), ChoiceNotice, "f.py", 1)
    entry._show_warning(UserWarning("--scales has no effect"), UserWarning, "f.py", 1)
    assert capsys.readouterr().err.splitlines() == [
        "cam-rt: note: auto chose openvino fp32",
        "cam-rt: warning: --scales has no effect",
    ]


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_notes_only(quiet: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry.quiet_notes(quiet)
        warnings.warn("auto chose cpu", ChoiceNotice, stacklevel=1)
        warnings.warn("a real problem", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == (
        ["a real problem"] if quiet else ["auto chose cpu", "a real problem"]
    )
