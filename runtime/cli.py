"""The ``cam-rt`` command.

Sub-commands that need optional packages (``export`` needs TensorFlow) are plug-ins registered
through the ``cam_rt.commands`` entry-point group, so this module, like the rest of
``cam_rt.runtime``, never imports ``cam_rt.export`` or TensorFlow. Each plug-in imports its heavy
dependencies inside the command body, so ``cam-rt --help`` stays fast.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from ._version import __version__
from .errors import CamRtError

__all__ = ["app", "main"]

app = typer.Typer(
    name="cam-rt",
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
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """cam-rt: class activation maps with ONNX Runtime."""


def _register_plugins() -> None:
    for ep in entry_points(group="cam_rt.commands"):
        ep.load()(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cam-rt`` script: cam-rt errors become one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answer without loading plug-ins
        print(f"cam-rt {__version__}")
        return
    _register_plugins()
    try:
        app(args=args, prog_name="cam-rt", standalone_mode=False)
    except CamRtError as exc:
        print(f"cam-rt: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("cam-rt: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
