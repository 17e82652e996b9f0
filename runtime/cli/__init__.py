"""The ``cam-rt`` command (typer): the app and one module per command family.

Importing this package is light: :func:`main` (``entry``) installs the signal handlers, then
imports the app; :func:`get_app` imports it when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .entry import main

if TYPE_CHECKING:
    import typer

__all__ = ["get_app", "main"]


def get_app() -> typer.Typer:
    """The ``cam-rt`` typer app with every installed plug-in command registered (once)."""
    from .app import get_app as app_with_plugins

    return app_with_plugins()
