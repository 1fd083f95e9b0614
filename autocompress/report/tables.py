"""The study as tables: every trial, and the Pareto front (teacher first), from the study view. Each row names its
model in words (autocompress.report.recipe_text) and its recipe's parameters as the recipe holds them (128, not
Optuna's index 2 of an ordered choice; integers as integers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from autocompress.engine.study import is_feasible
from autocompress.engine.view import StudyView, teacher_layers
from autocompress.evaluate.objectives import Measure
from autocompress.report.recipe_text import describe


def row(trial: FrozenTrial, measures: tuple[Measure, ...], layers: tuple[int, int] | None = None) -> dict[str, Any]:
    """`layers`: the teacher's (encoder, decoder) layer counts, for the model's description."""
    attrs = trial.user_attrs
    values = attrs.get("values", {})
    phases = attrs.get("phases", {})
    recipe = attrs.get("recipe")
    return {
        "trial": trial.number,
        "model": describe(recipe, layers) if recipe else None,
        "state": trial.state.name,
        **{m.key: values.get(m.key) for m in measures},
        "feasible": is_feasible(trial) if trial.state == TrialState.COMPLETE else None,
        "recipe_id": attrs.get("recipe_id"),
        **recipe_params(recipe),
        "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None,
        **{f"seconds {k}": v for k, v in phases.items() if k != "total"},
        "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
        "completed": trial.datetime_complete.isoformat(timespec="seconds") if trial.datetime_complete else None,
        "duplicate_of": attrs.get("duplicate_of"),
        "rerun_of": attrs.get("rerun_of"),
        "fail_reason": attrs.get("fail_reason"),
        "cut_short": (attrs.get("cut_short") or {}).get("reason"),
        "artifact": attrs.get("artifact"),
    }


def recipe_params(recipe: dict[str, Any] | None) -> dict[str, Any]:
    """`pass.param` → value for every pass of the recipe (a pass it leaves out: no column value)."""
    passes = (recipe or {}).get("passes", [])
    return {f"{p['name']}.{k}": v for p in passes for k, v in sorted(p.get("params", {}).items())}


def trials_frame(view: StudyView) -> pd.DataFrame:
    layers = teacher_layers(view)
    rows = [row(t, view.measures, layers) for t in view.study.get_trials(deepcopy=False)]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    fixed = ["trial", "model", "state", *(m.key for m in view.measures), "feasible", "recipe_id"]
    params = sorted(c for c in frame.columns if "." in c)  # every recipe's parameters together, by pass
    ordered = fixed + params + [c for c in frame.columns if c not in fixed and c not in params]
    return frame[ordered].convert_dtypes()


def baseline_row(view: StudyView) -> dict[str, Any]:
    values = view.baseline.get("values", {})
    recipe = view.baseline.get("recipe")
    return {
        "trial": "teacher",
        "model": f"teacher ({describe(recipe).removeprefix('teacher, ')})" if recipe else "teacher",
        "state": "BASELINE",
        **{m.key: values.get(m.key) for m in view.measures},
        "recipe_id": view.baseline.get("recipe_id"),
    }


def front_rows(view: StudyView) -> list[dict[str, Any]]:
    """The teacher, then the front."""
    layers = teacher_layers(view)
    return [baseline_row(view)] + [row(t, view.measures, layers) for t in view.front]


def write_tables(view: StudyView, out: Path) -> None:
    trials_frame(view).to_csv(out / "trials.csv", index=False)
    pd.DataFrame(front_rows(view)).convert_dtypes().to_csv(out / "pareto.csv", index=False)
    records = [
        {
            "trial": t.number,
            "model": describe(t.user_attrs.get("recipe") or {}, teacher_layers(view)),
            "values": t.user_attrs.get("values"),
            "recipe": t.user_attrs.get("recipe"),
            "recipe_id": t.user_attrs.get("recipe_id"),
            "signatures": t.user_attrs.get("signatures"),
            "artifact": t.user_attrs.get("artifact"),
        }
        for t in view.front
    ]
    summary = {
        "study": view.name,
        "objectives": [m.key for m in view.objectives],
        "baseline": view.baseline,
        "selected": view.selected.number if view.selected is not None else None,
        "selection": view.rule,
        "pareto": records,
    }
    (out / "pareto.json").write_text(json.dumps(summary, indent=2))
