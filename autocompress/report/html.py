"""report.html: one self-contained file (plots embedded), readable offline and attachable to a release."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from autocompress.report.tables import front_rows, trials_frame
from autocompress.report.view import RETIMED_NOTE, StudyView, comparison

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 1px 4px; } .note { color: #666; }
"""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)


def write_html(view: StudyView, out: Path, plots: dict[str, str]) -> Path:
    settings, baseline, chosen = view.settings, view.baseline, view.selected
    parts = [f"<h1>autocompress study <code>{html.escape(view.name)}</code></h1>"]
    if chosen is not None:
        rows = comparison(view, chosen)
        parts.append(f"<h2>Selected: trial {chosen.number} ({html.escape(view.rule)}, meeting the constraints)</h2>")
        parts.append(_table(pd.DataFrame(rows).drop(columns=["retimed"])))
        if any(row["retimed"] for row in rows):
            parts.append(f"<p class='note'>{html.escape(RETIMED_NOTE)}</p>")
    else:
        parts.append(f"<h2>No trial met the constraints</h2><p>max BLEU drop {view.max_bleu_drop}.</p>")
    parts.append("<h2>Plots</h2>")
    for name, file in plots.items():
        if file.endswith(".png"):
            data = base64.b64encode((out / file).read_bytes()).decode()
            parts.append(
                f"<h3>{html.escape(name.replace('_', ' '))}</h3><img alt='{name}' src='data:image/png;base64,{data}'>"
            )
        else:
            parts.append(f"<p class='note'>{html.escape(name)}: {html.escape(file)}</p>")
    front = pd.DataFrame(front_rows(view))
    columns = ["trial", *(m.key for m in view.measures), "recipe_id"]
    parts.append("<h2>Pareto front (teacher first)</h2>" + _table(front[columns]))
    frame = trials_frame(view)
    parts.append(f"<h2>All trials ({len(frame)})</h2>" + _table(frame.drop(columns=["artifact"], errors="ignore")))
    signatures = baseline.get("signatures", {})
    parts.append("<h2>Settings and signatures</h2><pre>" + html.escape(json.dumps(settings, indent=2)) + "</pre>")
    parts.append("<pre>" + html.escape(json.dumps(signatures, indent=2)) + "</pre>")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(view.name)}</title>"
    page += f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
