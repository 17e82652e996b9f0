"""The ``cam-rt`` command (typer): the app and one module per command family."""

from __future__ import annotations

from .app import get_app, main

__all__ = ["get_app", "main"]
