"""HTML reports a person reads: a run's (``cam-rt run --report``) and an evaluation's
(``cam-rt eval --report``).

A run's report is built from its ``results.jsonl`` alone (after the merge), so a resumed run's
report equals an uninterrupted run's: ``OUTDIR/index.html`` is page 1, pages 2.. are
``OUTDIR/report/page-N.html`` (:data:`PAGE_SIZE` images each). Images are the run's own PNG
files, scaled by CSS and loaded lazily; nothing is fetched from elsewhere, so the pages work
from ``file://``. :func:`run_pages` and :func:`eval_page` are pure (records -> HTML);
:func:`write_run_report` and :func:`write_eval_report` write the files atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .folder import write_error
from .io import write_atomic
from .records import RESULTS
from .report_page import href, line_plot, page, text, truncate

__all__ = [
    "INDEX",
    "PAGE_SIZE",
    "eval_page",
    "page_file",
    "read_records",
    "report_path",
    "run_pages",
    "write_eval_report",
    "write_run_report",
]

INDEX = "index.html"
REPORT_DIR = "report"
PAGE_SIZE = 200
#: Per image at most this many classes and boxes are listed, and messages are cut, so that a
#: page stays small (under 2 MB at 200 images) whatever the records hold.
MAX_LISTED = 12
MAX_TEXT = 300
MAX_FAILED_LISTED = 100

Settings = Sequence[tuple[str, str]]


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a ``results.jsonl``: lines that are not a JSON object with a name are
    left out."""
    with path.open("rb") as f:
        for raw in f:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                yield record


def page_file(number: int) -> str:
    """Page ``number`` (1-based) relative to the output folder."""
    return INDEX if number == 1 else f"{REPORT_DIR}/page-{number}.html"


def _nav(number: int, pages: int, prefix: str) -> str:
    if pages <= 1:
        return ""
    parts = ['<nav aria-label="pages">']
    if number > 1:
        parts.append(f'<a rel="prev" href="{href(page_file(number - 1), prefix)}">previous</a>')
    for n in range(1, pages + 1):
        if n == number:
            parts.append(f'<span class="here">{n}</span>')
        else:
            parts.append(f'<a href="{href(page_file(n), prefix)}">{n}</a>')
    if number < pages:
        parts.append(f'<a rel="next" href="{href(page_file(number + 1), prefix)}">next</a>')
    return " ".join(parts) + "</nav>"


def _list(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = "".join(f"<li>{item}</li>" for item in items[:limit])
    if len(items) > limit:
        shown += f'<li class="more">... and {len(items) - limit} more</li>'
    return f"<ul>{shown}</ul>" if shown else ""


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "?"


def _classes(record: Mapping[str, Any]) -> list[str]:
    out = []
    for c in record.get("classes") or ():
        if isinstance(c, Mapping):
            name = text(truncate(c.get("name", c.get("id", "?")), 80))
            out.append(f'{name} <span class="more">{_number(c.get("probability"))}</span>')
    return out


def _boxes(record: Mapping[str, Any]) -> list[str]:
    names = {
        c.get("id"): c.get("name") for c in record.get("classes") or () if isinstance(c, Mapping)
    }
    out = []
    for b in record.get("boxes") or ():
        if isinstance(b, Mapping):
            cid = b.get("class_id")
            box = b.get("box")
            where = "none" if box is None else ", ".join(map(str, box))
            out.append(f"{text(truncate(names.get(cid, cid), 80))}: {text(truncate(where, 80))}")
    return out


def _image(record: Mapping[str, Any], prefix: str) -> str:
    name = text(truncate(record.get("name", "?"), MAX_TEXT))
    if "error" in record:
        message = text(truncate(record.get("error"), MAX_TEXT))
        return (
            f'<div class="image failed"><h3>{name}</h3><p class="error">failed: {message}</p></div>'
        )
    outputs = [o for o in record.get("outputs") or () if isinstance(o, str)]
    thumbs = []
    for kind in ("overlay", "heatmap"):
        found = next((o for o in outputs if o.endswith(f".{kind}.png")), None)
        if found is not None:
            link = href(found, prefix)
            thumbs.append(
                f'<a href="{link}"><img src="{link}" loading="lazy" alt="{kind} of {name}"></a>'
            )
    size = record.get("size")
    size_text = "x".join(map(str, size)) if isinstance(size, list) else "?"
    links = [f'<a href="{href(o, prefix)}">{text(truncate(o, 120))}</a>' for o in outputs]
    errors = record.get("output_errors")
    problems = ""
    if isinstance(errors, Mapping) and errors:
        problems = "".join(
            f'<p class="error">{text(k)}: {text(truncate(v, MAX_TEXT))}</p>'
            for k, v in list(errors.items())[:MAX_LISTED]
        )
    return (
        f'<div class="image"><h3>{name}</h3>'
        f'<div class="thumbs">{"".join(thumbs)}</div>'
        f'<p class="more">{text(size_text)} (h x w)</p>'
        f"<b>classes</b>{_list(_classes(record))}"
        f"<b>boxes</b> (x0, y0, x1, y1){_list(_boxes(record))}"
        f"{problems}<details><summary>files</summary>{_list(links, 20)}</details></div>"
    )


def _settings_table(settings: Settings) -> str:
    rows = "".join(
        f"<tr><th>{text(k)}</th><td>{text(truncate(v, 2000))}</td></tr>" for k, v in settings
    )
    return f'<table class="settings">{rows}</table>'


def run_pages(
    records: Sequence[Mapping[str, Any]],
    settings: Settings = (),
    page_size: int = PAGE_SIZE,
    title: str = "cam-rt run",
) -> dict[str, str]:
    """The report of a run's ``records`` (results.jsonl order): {file relative to the output
    folder: HTML}. Page 1 (``index.html``) also has the settings, the counts and the failed
    images (the first :data:`MAX_FAILED_LISTED`, with the page each is on)."""
    if page_size < 1:
        raise ConfigError(f"report page size {page_size} must be >= 1")
    pages = max(1, -(-len(records) // page_size))
    failed = [(i, r) for i, r in enumerate(records) if "error" in r]
    out: dict[str, str] = {}
    for number in range(1, pages + 1):
        prefix = "" if number == 1 else "../"
        chunk = records[(number - 1) * page_size : number * page_size]
        first = (number - 1) * page_size + 1
        body = [f"<h1>{text(title)}</h1>"]
        if number == 1:
            body.append("<h2>Settings</h2>" + _settings_table(settings))
            body.append(
                f"<p>{len(records)} images: {len(records) - len(failed)} written, "
                f"{len(failed)} failed; {pages} page(s) of {page_size}.</p>"
            )
            if failed:
                items = [
                    f'<a href="{href(page_file(i // page_size + 1))}">'
                    f"{text(truncate(r.get('name'), MAX_TEXT))}</a>: "
                    f'<span class="error">{text(truncate(r.get("error"), MAX_TEXT))}</span>'
                    for i, r in failed
                ]
                body.append("<h2>Failed images</h2>" + _list(items, MAX_FAILED_LISTED))
        else:
            body.append(f'<p><a href="{href(INDEX, prefix)}">settings and summary</a></p>')
        body.append(_nav(number, pages, prefix))
        last = first + len(chunk) - 1
        body.append(f"<h2>Images {first}-{last} of {len(records)}</h2>" if chunk else "")
        body.append('<div class="images">' + "".join(_image(r, prefix) for r in chunk) + "</div>")
        body.append(_nav(number, pages, prefix))
        out[page_file(number)] = page(f"{title} (page {number} of {pages})", "\n".join(body))
    return out


def _write(path: Path, html_text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, html_text.encode())
    except OSError as exc:
        raise write_error(path.parent, path, exc) from exc


def write_run_report(
    outdir: Path, settings: Settings = (), page_size: int = PAGE_SIZE
) -> list[Path]:
    """Write the report of ``outdir/results.jsonl``; pages a previous, longer report left are
    removed. Returns the pages written. OutputFolderError if they cannot be written."""
    outdir = Path(outdir)
    results = outdir / RESULTS
    records = list(read_records(results)) if results.is_file() else []
    pages = run_pages(records, settings, page_size)
    written = []
    for rel, html_text in pages.items():
        _write(outdir / rel, html_text)
        written.append(outdir / rel)
    folder = outdir / REPORT_DIR
    if folder.is_dir():
        for stale in folder.glob("page-*.html"):
            if f"{REPORT_DIR}/{stale.name}" not in pages:
                stale.unlink(missing_ok=True)
    return written


def eval_page(
    report: Mapping[str, Any], settings: Settings = (), title: str = "cam-rt eval"
) -> str:
    """The page of an evaluation, from its JSON (``EvalReport.to_json()``): the per-class IoU
    table at the best threshold, the mIoU sweep as an SVG plot, the worst images, failures."""
    best = report.get("best_threshold")
    body = [f"<h1>{text(title)}</h1>", "<h2>Settings</h2>" + _settings_table(settings)]
    body.append(
        f"<p>{text(report.get('images', '?'))} images scored; mIoU "
        f"<b>{_number(100 * float(report.get('miou', 0.0)), 2)}</b> at background threshold "
        f"{_number(best, 2)}.</p>"
    )
    rows = "".join(
        f'<tr><td>{text(name)}</td><td class="num">{_number(100 * float(v), 2)}</td></tr>'
        for name, v in (report.get("per_class_iou") or {}).items()
    )
    body.append(
        f'<h2>IoU per class (t = {_number(best, 2)})</h2><table id="per-class">'
        f"<tr><th>class</th><th>IoU %</th></tr>{rows}</table>"
    )
    absent = report.get("classes_absent") or []
    if absent:
        body.append(
            "<p>Absent from masks and predictions (IoU 0): "
            + text(", ".join(map(str, absent)))
            + "</p>"
        )
    sweep = [(float(t), float(m)) for t, m in (report.get("miou_by_threshold") or {}).items()]
    body.append(
        "<h2>mIoU by background threshold</h2>"
        + line_plot(sweep, None if best is None else float(best), "threshold", "mIoU %")
    )
    worst = "".join(
        f'<tr><td>{text(w.get("name"))}</td><td class="num">'
        f'{_number(100 * float(w.get("miou", 0.0)), 2)}</td><td class="num">'
        f"{_number(100 * float(w.get('wrong_pixels', 0.0)), 2)}</td></tr>"
        for w in report.get("worst_images") or []
    )
    body.append(
        '<h2>Worst images</h2><table id="worst"><tr><th>image</th><th>mIoU %</th>'
        f"<th>wrong pixels %</th></tr>{worst}</table>"
    )
    failed = [
        f'{text(f.get("name"))}: <span class="error">{text(truncate(f.get("error"), 300))}</span>'
        for f in report.get("failed") or []
    ]
    if failed:
        body.append("<h2>Failed images</h2>" + _list(failed, MAX_FAILED_LISTED))
    return page(title, "\n".join(body))


def report_path(path: Path) -> Path:
    """``--report FILE_OR_DIR``: a folder (existing, or named with a trailing '/' or without a
    suffix) gets ``index.html``."""
    if path.is_dir() or str(path).endswith("/") or not path.suffix:
        return path / INDEX
    return path


def write_eval_report(path: Path, report: Mapping[str, Any], settings: Settings = ()) -> Path:
    """Write :func:`eval_page` to ``path`` (see :func:`report_path`); returns the file."""
    target = report_path(Path(path))
    _write(target, eval_page(report, settings))
    return target
