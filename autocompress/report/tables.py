"""The study as tables: every trial, and the Pareto front (teacher first), from the study view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from autocompress.engine.study import is_feasible
from autocompress.objectives import Measure
from autocompress.report.view import StudyView


def row(trial: FrozenTrial, measures: tuple[Measure, ...]) -> dict[str, Any]:
    attrs = trial.user_attrs
    values = attrs.get("values", {})
    phases = attrs.get("phases", {})
    return {
        "trial": trial.number,
        "state": trial.state.name,
        **{m.key: values.get(m.key) for m in measures},
        "feasible": is_feasible(trial) if trial.state == TrialState.COMPLETE else None,
        "recipe_id": attrs.get("recipe_id"),
        **{f"param {k}": v for k, v in sorted(trial.params.items())},
        "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None,
        **{f"seconds {k}": v for k, v in phases.items() if k != "total"},
        "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
        "completed": trial.datetime_complete.isoformat(timespec="seconds") if trial.datetime_complete else None,
        "duplicate_of": attrs.get("duplicate_of"),
        "rerun_of": attrs.get("rerun_of"),
        "fail_reason": attrs.get("fail_reason"),
        "artifact": attrs.get("artifact"),
    }


def trials_frame(view: StudyView) -> pd.DataFrame:
    return pd.DataFrame([row(t, view.measures) for t in view.study.get_trials(deepcopy=False)])


def baseline_row(view: StudyView) -> dict[str, Any]:
    values = view.baseline.get("values", {})
    return {
        "trial": "teacher",
        "state": "BASELINE",
        **{m.key: values.get(m.key) for m in view.measures},
        "recipe_id": view.baseline.get("recipe_id"),
    }


def front_rows(view: StudyView) -> list[dict[str, Any]]:
    """The teacher, then the front."""
    return [baseline_row(view)] + [row(t, view.measures) for t in view.front]


def write_tables(view: StudyView, out: Path) -> None:
    trials_frame(view).to_csv(out / "trials.csv", index=False)
    pd.DataFrame([row(t, view.measures) for t in view.front]).to_csv(out / "pareto.csv", index=False)
    records = [
        {
            "trial": t.number,
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
