"""The ``cam-rt`` entry point: the signal handlers first, then the app.

:func:`main` installs its SIGINT and SIGTERM handlers before it imports the app (typer, the
commands, their engines), so Ctrl-C or a SIGTERM at any moment of a command (importing,
loading plug-ins, parsing, opening the model, running) ends it the same way: one line on
stderr (``cam-rt: interrupted``, or the run's own summary) and exit code 130, no traceback.
``cam-rt run`` keeps its own SIGTERM handling during the run (finished images kept).

A signal is acted on in three ways, by phase:

- until a command starts (importing the app, building and parsing the command line): noted,
  and acted on when the command would start (:func:`command_starts`) or when ``main`` ends,
  so that no import is cut in the middle;
- while the command runs: a ``KeyboardInterrupt`` where the program is (the command's own
  ``finally`` blocks run; an error that follows it, e.g. an ``ImportError`` made of it by an
  extension module interrupted while loading, counts as the interrupt, :func:`interrupted`);
- once the command is over (its last line printed, the interpreter shutting down): exit at
  once, code 130.

Exit codes: 0 done; 1 an error (a ``CamRtError``, a usage error, a check that failed);
2 some inputs failed (``run``, ``eval``); 130 interrupted.

This module imports nothing heavy; what runs before :func:`main` is the interpreter's start
and the import of the parent package ``cam_rt.runtime``, which no handler of cam-rt covers.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["INTERRUPTED", "command_starts", "interrupted", "main", "say_interrupted"]

#: The exit code of an interrupted command (128 + SIGINT, as a shell reports Ctrl-C).
INTERRUPTED = 130

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: phase: "defer" (start-up), "raise" (a command runs), "exit" (over); signalled: a SIGINT or
#: SIGTERM came; said: "cam-rt: interrupted" was printed.
_state: dict[str, Any] = {"phase": "raise", "signalled": False, "said": False}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM, by phase (see the module's docstring)."""
    _state["signalled"] = True
    if _state["phase"] == "raise":
        raise KeyboardInterrupt
    if _state["phase"] == "exit":
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        os._exit(INTERRUPTED)


def command_starts() -> None:
    """From now on a signal interrupts where the program is; a signal that came during the
    start-up interrupts now. (Called by the app's group; without :func:`main`, no-op.)"""
    _state["phase"] = "raise"
    if _state["signalled"]:
        raise KeyboardInterrupt


def interrupted() -> bool:
    """True once :func:`main` received SIGINT or SIGTERM: whatever error follows is the
    interrupt's."""
    return bool(_state["signalled"])


def say_interrupted() -> int:
    """Print ``cam-rt: interrupted`` (once); the exit code 130."""
    if not _state["said"]:
        _state["said"] = True
        print("cam-rt: interrupted", file=sys.stderr)
    return INTERRUPTED


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``cam-rt`` script and of ``python -m cam_rt.runtime.cli``.

    ``main()`` (the program) keeps its signal handlers until the process ends; ``main(argv)``,
    called from Python, puts the previous ones back when it returns. Raises SystemExit with
    the command's exit code.
    """
    _state.update(phase="defer", signalled=False, said=False)
    previous = _install()
    _state["hook"] = hook = sys.unraisablehook
    sys.unraisablehook = _unraisable
    try:
        code = _run(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:
        _state["phase"] = "exit"
        code = say_interrupted()
    except Exception:
        _state["phase"] = "exit"
        if not interrupted():
            raise  # a bug: its traceback
        code = say_interrupted()
    finally:
        _state["phase"] = "exit"
        sys.unraisablehook = hook
        if previous is not None and argv is not None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if interrupted():  # (run prints its own summary line and exits 130)
        code = code if code == INTERRUPTED else say_interrupted()
        _forget_caught_interrupts()
    raise SystemExit(code)


def _install() -> dict[int, Any] | None:
    """Our handler for SIGINT and SIGTERM; the previous ones (None off the main thread, where
    Python cannot set handlers)."""
    try:
        return {int(s): signal.signal(s, _on_signal) for s in _SIGNALS}
    except ValueError:  # not the main thread of the interpreter
        return None


def _run(args: list[str]) -> int:
    """The command's exit code."""
    if args == ["--version"]:  # answer without loading the app or the plug-ins
        from .._version import __version__

        print(f"cam-rt {__version__}")
        return 0
    import warnings

    warnings.showwarning = _show_warning
    from .app import get_app

    try:
        get_app()(args=args, prog_name="cam-rt")
    except SystemExit as exc:  # how a click/typer command ends
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _unraisable(unraisable: Any) -> None:
    """A KeyboardInterrupt that C code could not pass on (it would be printed as "Exception
    ignored in ...", with a traceback, and lost) is raised again, in the main thread."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _thread.interrupt_main(signal.SIGINT)
        return
    _state.get("hook", sys.__unraisablehook__)(unraisable)


def _forget_caught_interrupts() -> None:
    """A KeyboardInterrupt raised inside ``exec``/``eval`` of a string (dataclasses, typing
    and inspect do that) marks the interpreter to end by SIGINT (-2) whatever the exit code,
    even once caught; running any string resets the mark (CPython's ``run_eval_code_obj``),
    so that the exit code stays 130."""
    exec("pass")


def _show_warning(message: Any, category: Any, *_args: Any, **_kwargs: Any) -> None:
    from ..errors import CamRtNotice

    kind = "note" if isinstance(category, type) and issubclass(category, CamRtNotice) else "warning"
    print(f"cam-rt: {kind}: {message}", file=sys.stderr)


def quiet_notes(quiet: bool) -> None:
    """``-q``: notes (:class:`~cam_rt.runtime.errors.CamRtNotice`) are not printed."""
    if quiet:
        import warnings

        from ..errors import CamRtNotice

        warnings.simplefilter("ignore", CamRtNotice)
