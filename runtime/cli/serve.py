"""``cam-rt serve``: CAMs over HTTP, with the explain and device options of ``cam-rt run``.

The server itself (:mod:`cam_rt.runtime.serve`) needs the ``serve`` extra (starlette,
uvicorn, prometheus-client), imported only when the command runs; without it the command
says which extra to install.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from ..errors import MissingDependencyError
from ..explain import Explainer
from ..maps.tta import TTAConfig
from ..serve.config import ServeConfig
from .groups import expand, group
from .options import DeviceOptions, ExplainOptions, ModelFile, open_model, parse_scales

__all__ = ["ServeOptions", "serve_command"]

_SERVE = ServeConfig()


@dataclass(frozen=True, slots=True)
class _RequestDefaults(ExplainOptions):
    """The explain options as the server's defaults: ``--scales``, ``--flip`` and
    ``--tta-mode`` apply to requests with ``tta=on`` even when ``--tta`` is off."""

    def notes(self, given: Set[str]) -> list[str]:
        return []


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The server's options: one per field of :class:`ServeConfig`."""

    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = _SERVE.host
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = _SERVE.port
    name: Annotated[
        str, typer.Option("--name", help="The model's name in the URLs (default: file stem).")
    ] = _SERVE.name
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Images at most in one micro-batch.")
    ] = _SERVE.max_batch
    max_wait_ms: Annotated[
        float,
        typer.Option("--max-wait-ms", help="How long a micro-batch waits for more images."),
    ] = _SERVE.max_wait_ms
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Images that may wait; beyond: 503, Retry-After.")
    ] = _SERVE.max_queue
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="A request not answered by then gets 504.")
    ] = _SERVE.timeout_s
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Larger request bodies get 413, unread.")
    ] = _SERVE.max_body_mb
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="Larger images get 413, before decoding.")
    ] = _SERVE.max_pixels
    bg_threshold: Annotated[
        float, typer.Option("--bg-threshold", help="Background score of the segmentation seeds.")
    ] = _SERVE.bg_threshold

    def __post_init__(self) -> None:
        self.config()

    def config(self) -> ServeConfig:
        return ServeConfig(
            host=self.host,
            port=self.port,
            name=self.name,
            max_batch=self.max_batch,
            max_wait_ms=self.max_wait_ms,
            max_queue=self.max_queue,
            timeout_s=self.timeout_s,
            max_body_mb=self.max_body_mb,
            max_pixels=self.max_pixels,
            bg_threshold=self.bg_threshold,
        )


@expand
def serve_command(
    model: ModelFile,
    explain: ExplainOptions = group(
        _RequestDefaults,
        help={"tta": "TTA for requests that do not say (tta=on|off in the query)."},
    ),
    device: DeviceOptions = group(DeviceOptions),
    server: ServeOptions = group(ServeOptions),
) -> None:
    """Serve CAMs over HTTP: POST /v1/explain (image bytes), POST /v1/models/NAME:explain
    (KServe v1), GET /v1/models/NAME, /healthz and /metrics. Stops on SIGTERM or Ctrl-C once
    the requests in flight are answered (exit code 0)."""
    try:
        from ..serve.batcher import ExplainerSet
        from ..serve.server import serve
    except ImportError as exc:
        missing = (exc.name or "uvicorn").split(".")[0].replace("_", "-")
        raise MissingDependencyError(missing, "serve", "cam-rt serve") from None
    config = server.config()
    explain_config = replace(explain.config(), max_input_pixels=config.max_pixels)
    session = open_model(model, device.session_config(explain_config))
    tta = TTAConfig(parse_scales(explain.scales), explain.flip, explain.tta_mode)
    explainers = ExplainerSet(Explainer(session, explain_config), tta, explain.tta)
    serve(explainers, config, config.name or Path(model).stem, say=_say)


def _say(text: str) -> None:
    typer.echo(text, err=True)
