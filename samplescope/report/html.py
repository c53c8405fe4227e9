"""Render report sections as one self-contained HTML file (images as base64 data URIs)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from samplescope.report.context import Section

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; padding-bottom: 0.2rem;
     border-bottom: 1px solid #ddd; }
nav ol { columns: 2; font-size: 0.9rem; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #666; font-size: 0.85rem; }
.warning { background: #fff4e5; border-left: 4px solid #f0a000; padding: 0.5rem 1rem; }
footer { margin-top: 3rem; color: #888; font-size: 0.8rem; }
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render(
    title: str, sections: list[Section], folder: Path, warnings: list[str], footer: str
) -> str:
    """The whole page; ``folder`` holds the PNGs the sections name."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    parts += [f'<p class="warning">{esc(w)}</p>' for w in warnings]
    parts.append("<nav><ol>")
    parts += [f'<li><a href="#{esc(s.key)}">{esc(s.title)}</a></li>' for s in sections]
    parts.append("</ol></nav>")
    for s in sections:
        parts.append(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>')
        parts += [f"<p>{esc(p)}</p>" for p in s.paragraphs]
        for name in s.images:
            parts.append(
                f'<figure><img alt="{esc(s.title)}" src="{data_uri(folder / name)}"></figure>'
            )
        if s.note:
            parts.append(f'<p class="note">{esc(s.note)}</p>')
        parts.append("</section>")
    parts.append(f"<footer>{esc(footer)}</footer></body></html>")
    return "\n".join(parts) + "\n"
