"""The ``cam-rt`` command: the typer group, its error and warning lines, and the plug-ins.

The commands live one family per module (``run``, ``evaluate``, ``bench``, ``model``); their
shared options are the groups of ``options``. Sub-commands that need optional packages
(``export`` needs TensorFlow) are plug-ins registered through the ``cam_rt.commands``
entry-point group, so the CLI, like the rest of ``cam_rt.runtime``, never imports
``cam_rt.export`` or TensorFlow; each plug-in imports its heavy dependencies inside the
command body, so ``cam-rt --help`` stays fast.

Errors: a command raises ``CamRtError``; the group prints it as one line on stderr and exits 1.
Any other exception is a bug and keeps its traceback. Python warnings are printed as one
``cam-rt: warning:`` line each.
"""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import entry_points
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .._version import __version__
from ..errors import CamRtError
from .bench import bench_command, warmup_command
from .evaluate import eval_command
from .model import doctor_command, info_command, quantize_command, triton_command
from .run import run_command

__all__ = ["app", "get_app", "main"]


class _CamRtGroup(TyperGroup):
    """Turns cam-rt errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except CamRtError as exc:
            typer.echo(f"cam-rt: error: {exc}", err=True)
            raise typer.Exit(1) from None


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

_registered = False


def get_app() -> typer.Typer:
    """The app with every installed plug-in command registered (once)."""
    global _registered
    if not _registered:
        for ep in entry_points(group="cam_rt.commands"):
            ep.load()(app)
        _registered = True
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cam-rt`` script."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answer without loading plug-ins
        print(f"cam-rt {__version__}")
        return
    warnings.showwarning = _show_warning
    get_app()(args=args, prog_name="cam-rt")


def _show_warning(message: Any, category: Any, *_args: Any, **_kwargs: Any) -> None:
    print(f"cam-rt: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    main()
