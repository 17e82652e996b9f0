"""The HTML skeleton of cam-rt's reports: one self-contained page (inline CSS, no scripts, no
fetches but the run's own files), escaping helpers and an inline SVG line plot.

Every piece of user data (file names, class names, messages) goes through :func:`text` or
:func:`href`; nothing here reads or writes files.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from urllib.parse import quote

__all__ = ["href", "line_plot", "page", "text", "truncate"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
nav{margin:.8em 0}nav a,nav span{margin-right:.4em}nav span.here{font-weight:bold}
.images{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.image{border:1px solid #ccc;border-radius:4px;padding:8px}
.image.failed{border-color:#c33;background:#fff4f4}
.image h3{font-size:1em;margin:0 0 .3em;word-break:break-all}
.thumbs{display:flex;gap:6px;align-items:flex-start}
.thumbs img{max-width:150px;max-height:150px;object-fit:contain;background:#eee}
.image ul{margin:.3em 0;padding-left:1.2em}.error{color:#a00;word-break:break-word}
.more{color:#666}svg{background:#fafafa;border:1px solid #ddd}
"""


def text(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def href(path: str, prefix: str = "") -> str:
    """A relative link to ``path`` (a file of the output folder, '/' separated) from a page in
    ``prefix`` ('' or '../'): percent-encoded, then escaped for an attribute."""
    return text(prefix + quote(path, safe="/"))


def truncate(value: object, limit: int) -> str:
    """``str(value)`` cut to ``limit`` characters (with an ellipsis), before escaping."""
    s = str(value)
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"


def page(title: str, body: str) -> str:
    """A whole HTML document; ``title`` is plain text, ``body`` HTML already escaped."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{text(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def line_plot(
    points: Sequence[tuple[float, float]],
    mark: float | None = None,
    x_label: str = "",
    y_label: str = "",
    width: int = 520,
    height: int = 260,
) -> str:
    """An inline SVG line plot of ``points`` (x, y), y in [0, 1] shown as percent; ``mark``: an
    x to draw a vertical line at (the best threshold)."""
    if not points:
        return ""
    left, right, top, bottom = 48, 12, 12, 36
    xs = [p[0] for p in points]
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0
    y_top = max(1e-9, max(p[1] for p in points))
    y_top = min(1.0, math.ceil(y_top * 10) / 10) or 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / span * (width - left - right)

    def sy(y: float) -> float:
        return top + (1 - min(y, y_top) / y_top) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{text(y_label)}">'
    ]
    for i in range(5):  # y grid, 0 .. y_top
        y = y_top * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{100 * y:.0f}</text>"
        )
    for i in range(5):  # x ticks
        x = x0 + span * i / 4
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" font-size="11" '
            f'text-anchor="middle">{x:.2f}</text>'
        )
    if mark is not None:
        parts.append(
            f'<line x1="{sx(mark):.1f}" x2="{sx(mark):.1f}" y1="{top}" '
            f'y2="{height - bottom}" stroke="#c33" stroke-dasharray="4 3"/>'
        )
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{path}"/>')
    parts.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" font-size="12" '
        f'text-anchor="middle">{text(x_label)}</text>'
        f'<text x="12" y="{(top + height - bottom) / 2:.0f}" font-size="12" '
        f'text-anchor="middle" transform="rotate(-90 12 {(top + height - bottom) / 2:.0f})">'
        f"{text(y_label)}</text></svg>"
    )
    return "".join(parts)
