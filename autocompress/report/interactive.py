"""The front as an interactive chart inside report.html: plotly, with plotly.js embedded so the page works offline.

BLEU against p50 latency, every measured trial labelled with its number: the front, the other feasible trials, the
infeasible ones apart (grey, hollow), the teacher (a star) and the selected model (a ring). Hovering a point shows
its model in words, every value with its signature and the command that exports it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from autocompress.engine.study import is_feasible
from autocompress.engine.view import StudyView, teacher_layers
from autocompress.report.recipe_text import describe

DIV_ID = "pareto-front"
OUTSIDE = "infeasible (outside the constraint)"


def front_chart(view: StudyView, study_dir: Path) -> str:
    """An HTML fragment (a div and its scripts); a note where nothing is measured yet."""
    import plotly.graph_objects as go

    if not view.measured:
        return "<p class='note'>No trial measured yet.</p>"
    layers = teacher_layers(view)
    front = {t.number for t in view.front}
    groups: dict[str, list[FrozenTrial]] = {"Pareto front": [], "feasible": [], OUTSIDE: []}
    for trial in view.measured:
        key = "Pareto front" if trial.number in front else "feasible" if is_feasible(trial) else ""
        groups[key or OUTSIDE].append(trial)
    styles = {
        "Pareto front": {"color": "#d62728", "size": 11},
        "feasible": {"color": "#1f77b4", "size": 9},
        OUTSIDE: {"color": "rgba(0,0,0,0)", "size": 8, "line": {"color": "#999", "width": 1}},
    }
    figure = go.Figure()
    for name, trials in groups.items():
        if trials:
            figure.add_trace(_trace(view, trials, name, styles[name], layers, study_dir))
    teacher = view.baseline.get("values")
    if teacher:
        text = "<b>teacher</b><br>" + _values(view, teacher, view.baseline.get("signatures", {}))
        figure.add_trace(
            go.Scatter(
                x=[teacher["latency_p50_ms"]],
                y=[teacher["bleu"]],
                mode="markers",
                name="teacher",
                marker={"symbol": "star", "size": 18, "color": "gold", "line": {"color": "black", "width": 1}},
                hovertemplate=text + "<extra></extra>",
            )
        )
        if view.max_bleu_drop is not None:
            figure.add_hline(
                y=teacher["bleu"] - view.max_bleu_drop,
                line_dash="dot",
                line_color="gray",
                annotation_text="max BLEU drop",
            )
    if view.selected is not None:
        chosen = view.selected.user_attrs["values"]
        figure.add_trace(
            go.Scatter(
                x=[chosen["latency_p50_ms"]],
                y=[chosen["bleu"]],
                mode="markers",
                name=f"selected: trial {view.selected.number} ({view.rule})",
                hoverinfo="skip",
                marker={"symbol": "circle-open", "size": 24, "color": "black", "line": {"width": 2}},
            )
        )
    titles = {m.key: m.title for m in view.measures}
    figure.update_layout(
        xaxis_title=titles.get("latency_p50_ms", "latency") + " (log scale)",
        xaxis_type="log",  # an outlier (a slow precision) would squeeze every other point into a corner
        yaxis_title=f"{titles.get('bleu', 'BLEU')} (dev)",
        height=560,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        legend={"orientation": "h", "y": -0.15},
        hoverlabel={"align": "left"},
    )
    return figure.to_html(include_plotlyjs=True, full_html=False, div_id=DIV_ID, config={"displaylogo": False})


def _trace(
    view: StudyView,
    trials: list[FrozenTrial],
    name: str,
    marker: dict[str, Any],
    layers: tuple[int, int] | None,
    study_dir: Path,
) -> Any:
    import plotly.graph_objects as go

    values = [t.user_attrs["values"] for t in trials]
    hover = []
    for trial, value in zip(trials, values, strict=True):
        model = html.escape(describe(trial.user_attrs.get("recipe") or {}, layers))
        command = f"autocompress export {study_dir} --trial {trial.number} --to DIR"
        signatures = trial.user_attrs.get("signatures", {})
        hover.append(f"<b>trial {trial.number}</b>: {model}<br>{_values(view, value, signatures)}<br><i>{command}</i>")
    return go.Scatter(
        x=[v["latency_p50_ms"] for v in values],
        y=[v["bleu"] for v in values],
        mode="markers+text",
        text=[str(t.number) for t in trials],
        textposition="top center",
        textfont={"size": 9},
        name=name,
        marker=marker,
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>",
    )


def _values(view: StudyView, values: dict[str, Any], signatures: dict[str, Any]) -> str:
    lines = []
    for measure in view.measures:
        value = values.get(measure.key)
        if value is None:
            continue
        signature = signatures.get(measure.key)
        lines.append(
            f"{html.escape(measure.title)}: {value:.4g}"
            + (f" <span style='font-size:0.8em'>({html.escape(str(signature))})</span>" if signature else "")
        )
    return "<br>".join(lines)
