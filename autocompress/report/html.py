"""report.html: one self-contained file, readable offline and attachable to a release: the selected model against the
teacher, the front as an interactive plotly chart (autocompress.report.interactive: hover for the model, its values
with their signatures and the export command), the plots embedded, the front and the trials as short tables, the
settings and signatures folded away."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from autocompress.engine.view import RETIMED_NOTE, StudyView, comparison
from autocompress.report.interactive import front_chart
from autocompress.report.tables import front_rows, trials_frame

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 1px 4px; } .note { color: #666; } td:nth-child(2) { text-align: left; }
"""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)


def _note(record: dict[str, object]) -> str:
    for key, text in (
        ("duplicate_of", "same recipe as {}"),
        ("rerun_of", "rerun of {}"),
        ("fail_reason", "{}"),
        ("cut_short", "cut short: {}"),
    ):
        value = record.get(key)
        if not pd.isna(value):  # None, NaN and pandas' NA alike: the column is empty for this trial
            return text.format(value)
    return ""


def write_html(view: StudyView, out: Path, plots: dict[str, str], study_dir: Path | None = None) -> Path:
    """Into `out`, beside the plots' files; the export commands name `study_dir` (the final place of the outputs)."""
    study_dir = study_dir or out
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
    parts.append("<h2>The front: hover a point for its model, values and export command</h2>")
    parts.append(front_chart(view, study_dir))
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
    columns = ["trial", "model", *(m.key for m in view.measures)]
    parts.append("<h2>Pareto front (teacher first)</h2>" + _table(front[[c for c in columns if c in front]]))
    parts.append(f"<p class='note'>Export one: <code>autocompress export {html.escape(str(study_dir))} --trial N "
                 "--to DIR</code></p>")  # fmt: skip
    frame = trials_frame(view)
    if len(frame):
        frame["note"] = [_note(r) for r in frame.to_dict("records")]
        brief = ["trial", "model", "state", *(m.key for m in view.measures), "feasible", "seconds", "note"]
        parts.append(f"<h2>All trials ({len(frame)})</h2>" + _table(frame[[c for c in brief if c in frame]]))
        parts.append("<p class='note'>Every column (recipe parameters, phase times): trials.csv.</p>")
    plan = view.study.user_attrs.get("plan")
    if plan:
        from autocompress.engine.plan import plan_rows

        actual = plan_rows(plan, view.study.user_attrs.get("actuals", {}))
        parts.append("<h2>Plan and actual (seconds)</h2>" + _table(pd.DataFrame(actual)))
        if plan.get("adapted"):
            parts.append(f"<p class='note'>Adapted to the budget: {html.escape(plan['adapted'])}</p>")
    signatures = baseline.get("signatures", {})
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(str(v))}</code></td></tr>"
                   for k, v in signatures.items())  # fmt: skip
    parts.append(f"<h2>Signatures (the teacher's)</h2><table>{rows}</table>")
    parts.append("<details><summary>Settings of the search (JSON)</summary><pre>"
                 + html.escape(json.dumps(settings, indent=2)) + "</pre></details>")  # fmt: skip
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(view.name)}</title>"
    page += f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
