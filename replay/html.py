"""One self-contained HTML page (inline CSS and SVG, no JavaScript, nothing fetched), so a
report opens offline and can be mailed as a single file. Shared by replay's run reports and
stats' corpus reports."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1340px;
color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.grid{stroke:#eee}.axis{stroke:#888}.ref{stroke:#555;stroke-dasharray:3 3}
.span{fill:#2a9d4b;fill-opacity:.10}
svg text{font-size:11px;fill:#444}svg .title{font-size:13px;font-weight:600;fill:#222}
svg .label{font-size:12px}svg .muted{fill:#777}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #eee;background:#fff}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:right;
border-bottom:1px solid #eee}td:first-child,th:first-child{text-align:left}
.verdict{font-weight:700;padding:1px 6px;border-radius:3px;color:#fff}
.match{background:#2a9d4b}.differs{background:#c99a06}.far{background:#b8392f}
.note{color:#8a6d00}.muted{color:#777}
"""


def page(title: str, body: Sequence[str], css: str = "") -> str:
    """A whole document: `title` as its <title> and <h1>, then `body` (HTML fragments)."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{CSS}{css}</style></head><body><h1>{escape(title)}</h1>"
        + "".join(body)
        + "</body></html>\n"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A plain table; every cell is escaped text."""
    attr = f' class="{escape(cls)}"' if cls else ""
    out = [f"<table{attr}><tr>", *(f"<th>{escape(h)}</th>" for h in header), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)
