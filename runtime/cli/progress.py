"""The progress display of ``cam-rt run`` and ``cam-rt eval``, fed by the runners' events.

On a terminal: a rich progress bar (cleared at the end). Otherwise: one plain line on stderr
every ``every`` seconds and at the end. Quiet: nothing but failures and notes. Failures
(``cam-rt: failed: NAME: ERROR``) and notes are printed whatever the mode.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

__all__ = ["Progress"]


class Progress:
    """A context manager whose :meth:`event` is the runners' ``events`` callback."""

    def __init__(self, quiet: bool, every: float = 5.0) -> None:
        self.quiet = quiet
        self.every = every
        self.tty = sys.stderr.isatty()
        self._bar: Any = None  # a rich Progress on a terminal
        self._task: Any = None
        self._done = 0
        self._total = 0
        self._start = 0.0
        self._last = 0.0

    def __enter__(self) -> Progress:
        self._start = self._last = time.perf_counter()
        if self.tty and not self.quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("cam-rt"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def _say(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=True)

    def event(self, kind: str, data: Any) -> None:
        """One runner event: ``start``, ``conversion``, ``warning``, ``failed`` or ``done`` (an
        image written); any other kind is not an image and is passed over."""
        if kind == "start":
            self._total = data["total"] - data["skipped"]
            if data["skipped"]:
                self._say(f"cam-rt: skipping {data['skipped']} images whose outputs exist")
            if self._bar is not None:
                self._task = self._bar.add_task("run", total=self._total, rate="")
            return
        if kind == "conversion":
            self._say(f"cam-rt: note: converting {data['kind']} images (first: {data['name']})")
            return
        if kind == "warning":
            self._say(f"cam-rt: warning: {data['message']}")
            return
        if kind == "failed":
            record = data["record"]
            self._say(f"cam-rt: failed: {record['name']}: {record['error']}")
        elif kind != "done":
            return
        self._done += 1
        now = time.perf_counter()
        rate = self._done / max(now - self._start, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done, rate=f"{rate:.2f} img/s")
        elif not self.quiet and (now - self._last >= self.every or self._done == self._total):
            self._last = now
            left = (self._total - self._done) / rate if rate > 0 else 0
            self._say(
                f"cam-rt: {self._done}/{self._total} images, {rate:.2f} img/s, ETA {left:.0f} s"
            )
