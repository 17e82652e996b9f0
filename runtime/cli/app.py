"""The ``cam-rt`` command: the typer group, its error lines and exit codes, and the plug-ins.

The commands live one family per module (``run``, ``evaluate``, ``bench``, ``model``); their
shared options are the groups of ``options``. Sub-commands that need optional packages
(``export`` needs TensorFlow) are plug-ins registered through the ``cam_rt.commands``
entry-point group, so the CLI, like the rest of ``cam_rt.runtime``, never imports
``cam_rt.export`` or TensorFlow; each plug-in imports its heavy dependencies inside the
command body, so ``cam-rt --help`` stays fast. The program's entry point, which installs the
signal handlers before importing this module, is :func:`cam_rt.runtime.cli.entry.main`.

Errors: a command raises ``CamRtError``; the group prints it as one line on stderr and exits 1.
A usage error (a missing argument, an unknown option or command, a value of the wrong type)
is one line too, ``cam-rt: error: <click's text>; see 'cam-rt CMD --help'``, and exit code 1,
so that 2 means only "some inputs failed" (``run``, ``eval``). Bare ``cam-rt`` prints the
help and exits 1. A KeyboardInterrupt (Ctrl-C, or SIGTERM through ``main``) is the line
``cam-rt: interrupted`` and exit code 130. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Annotated, Any

import typer
from typer import core as typer_core
from typer.core import TyperGroup

from .._version import __version__
from ..errors import CamRtError
from .bench import bench_command, warmup_command
from .entry import command_starts, interrupted, say_interrupted
from .evaluate import eval_command
from .model import doctor_command, info_command, quantize_command, triton_command
from .run import run_command
from .serve import serve_command

__all__ = ["app", "get_app"]

_HAS_RICH = bool(getattr(typer_core, "HAS_RICH", False))  # typer prints its help with rich


class _CamRtGroup(TyperGroup):
    """Turns cam-rt errors and usage errors into one line on stderr and exit code 1, and an
    interrupt into ``cam-rt: interrupted`` and exit code 130."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's (vendored) click Context
        try:
            command_starts()  # signals now interrupt (before: noted, see entry)
            return super().invoke(ctx)
        except CamRtError as exc:
            if interrupted():  # the error is the interrupt's (see entry.interrupted)
                raise typer.Exit(say_interrupted()) from None
            typer.echo(f"cam-rt: error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(say_interrupted()) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """click's ``main``; standalone (the program, CliRunner), usage errors are one line."""
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # click's errors: usage, files (vendored click)
            words = list(sys.argv[1:] if args is None else args)[:1]
            command = [w for w in words if w in self.commands]  # when the error has no ctx
            path = " ".join([prog_name or "cam-rt", *command])
            code = _report(exc, path, rich=_HAS_RICH and self.rich_markup_mode is not None)
        except typer.Abort:  # end of input at a prompt
            typer.echo("cam-rt: aborted", err=True)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


def _report(exc: typer.TyperException, path: str, rich: bool) -> int:
    """One line for a click error: its own text and, for a usage error, where the help is
    (``path``: the command, if the error does not say); exit code 1."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `cam-rt`: the help, once
        if not rich:  # (with rich, typer printed it on stdout when the error was made)
            typer.echo(exc.format_message(), err=True)
        return 1
    text = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if getattr(exc, "exit_code", 1) == 2:  # a usage error
        text += f"; see '{path if ctx is None else ctx.command_path} --help'"
    typer.echo(f"cam-rt: error: {text}", err=True)
    return 1


app = typer.Typer(
    name="cam-rt",
    cls=_CamRtGroup,
    help="Class activation maps at deployment speed: export Keras classifiers to ONNX and "
    "compute CAMs with ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cam-rt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """cam-rt: class activation maps with ONNX Runtime."""


app.command("run")(run_command)
app.command("eval")(eval_command)
app.command("bench")(bench_command)
app.command("warmup")(warmup_command)
app.command("quantize")(quantize_command)
app.command("triton")(triton_command)
app.command("info")(info_command)
app.command("doctor")(doctor_command)
app.command("serve")(serve_command)

_registered = False


def get_app() -> typer.Typer:
    """The app with every installed plug-in command registered (once)."""
    global _registered
    if not _registered:
        for ep in entry_points(group="cam_rt.commands"):
            ep.load()(app)
        _registered = True
    return app
