"""The server's settings (:class:`ServeConfig`, the ``cam-rt serve`` options) and one request's
options (:class:`RequestOptions`, from the query string)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..explain import ClassSelection

__all__ = [
    "MAPS_FORMATS",
    "OUTPUT_KINDS",
    "QUERY_OPTIONS",
    "MapsFormat",
    "RequestOptions",
    "ServeConfig",
]

#: What ``outputs=`` may name: the ``cam-rt run --save`` kinds (``boxes``: the boxes picture;
#: the box coordinates are always in the JSON).
OUTPUT_KINDS = ("overlay", "colors", "heatmap", "seeds", "maps", "boxes")
MapsFormat = Literal["npz", "float16"]
MAPS_FORMATS: tuple[MapsFormat, ...] = ("npz", "float16")
QUERY_OPTIONS = ("classes", "tta", "outputs", "maps")
_ON = ("on", "true", "1", "yes")
_OFF = ("off", "false", "0", "no")


def _number(name: str, value: object, low: float, integer: bool) -> None:
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool) or value < low:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"--{name.replace('_', '-')} {value!r} must be {kind} >= {low:g}")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Where the server listens and its limits.

    - ``max_batch`` images at most go into one explain call, collected for up to
      ``max_wait_ms`` after the first (0: no waiting, batches of what is already queued);
    - ``max_queue`` images may wait; one more is answered 503 with ``Retry-After``;
    - ``timeout_s``: a request not answered by then is 504 (its image dropped if not started);
    - ``max_body_mb``: larger bodies are 413, refused from their Content-Length unread;
    - ``max_pixels``: larger images are 413, refused from their header before decoding;
    - ``name``: the model's name in the routes (``""``: the file's stem).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    name: str = ""
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 32
    timeout_s: float = 30.0
    max_body_mb: float = 32.0
    max_pixels: int = 25_000_000
    bg_threshold: float = 0.3

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("--host is empty: give an address, e.g. 127.0.0.1 or 0.0.0.0")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port!r} must be 0..65535 (0: any free port)")
        if "/" in self.name or ":" in self.name:
            raise ConfigError(f"--name '{self.name}' may not hold '/' or ':' (it is in the URLs)")
        _number("max_batch", self.max_batch, 1, True)
        _number("max_wait_ms", self.max_wait_ms, 0, False)
        _number("max_queue", self.max_queue, 1, True)
        _number("max_pixels", self.max_pixels, 1, True)
        for name in ("timeout_s", "max_body_mb"):
            value = getattr(self, name)
            _number(name, value, 0, False)
            if value == 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be above 0")
        if not 0.0 <= self.bg_threshold <= 1.0:
            raise ConfigError(f"--bg-threshold {self.bg_threshold} is outside [0, 1]")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """One request's options: TTA on or off (the server's TTA settings, or none), the classes
    (None: the server's ``--classes``), the extra outputs, and how maps are encoded."""

    tta: bool
    classes: ClassSelection | None = None
    outputs: tuple[str, ...] = ()
    maps: MapsFormat = "npz"

    @classmethod
    def parse(cls, query: Mapping[str, str], tta: bool, threshold: float = 0.5) -> RequestOptions:
        """The options of a query string (ConfigError naming a bad one); ``tta``: the default,
        ``threshold``: the server's ``--threshold`` for ``classes=predicted``."""
        unknown = sorted(set(query) - set(QUERY_OPTIONS))
        if unknown:
            raise ConfigError(
                f"query option '{unknown[0]}' is unknown: use {', '.join(QUERY_OPTIONS)}"
            )
        on = tta
        if "tta" in query:
            text = query["tta"].strip().lower()
            if text not in _ON + _OFF:
                raise ConfigError(f"tta={query['tta']} is not on or off")
            on = text in _ON
        classes = None
        if query.get("classes", "").strip():
            classes = ClassSelection.parse(query["classes"], threshold)
        outputs = tuple(dict.fromkeys(v.strip() for v in query.get("outputs", "").split(",")))
        outputs = tuple(v for v in outputs if v)
        bad = [v for v in outputs if v not in OUTPUT_KINDS]
        if bad:
            raise ConfigError(
                f"outputs={','.join(bad)} is unknown: use any of {','.join(OUTPUT_KINDS)}"
            )
        text = query.get("maps", "npz").strip()
        if text not in MAPS_FORMATS:
            raise ConfigError(f"maps={text} is unknown: use npz or float16")
        maps: MapsFormat = "npz" if text == "npz" else "float16"
        return cls(tta=on, classes=classes, outputs=outputs, maps=maps)
