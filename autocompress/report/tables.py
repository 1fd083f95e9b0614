"""The study as tables: every trial, and the Pareto front. Pure functions of the study; writers beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

MEASURED = ("bleu", "chrf", "latency_p50_ms", "latency_p95_ms", "throughput_b16", "peak_rss_mb", "size_mb")


def measured_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials that ran (a trial that repeated a measured recipe is left out: it is the same point)."""
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "duplicate_of" not in t.user_attrs
    ]


def feasible(trial: FrozenTrial) -> bool:
    return all(c <= 0 for c in trial.constraints.values())


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Optuna's non-dominated trials (feasible ones only, when there are constraints), one per recipe."""
    seen, front = set(), []
    for t in sorted(study.best_trials, key=lambda t: t.number):
        if t.user_attrs.get("recipe_id") not in seen and "duplicate_of" not in t.user_attrs:
            seen.add(t.user_attrs.get("recipe_id"))
            front.append(t)
    return front


def row(trial: FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    values = attrs.get("values", {})
    phases = attrs.get("phases", {})
    return {
        "trial": trial.number,
        "state": trial.state.name,
        **{name: values.get(name) for name in MEASURED},
        "feasible": feasible(trial) if trial.state == TrialState.COMPLETE else None,
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


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    return pd.DataFrame([row(t) for t in study.get_trials(deepcopy=False)])


def baseline_row(study: optuna.Study) -> dict[str, Any]:
    baseline = study.user_attrs.get("baseline", {})
    return {"trial": "teacher", "state": "BASELINE", **{n: baseline.get("values", {}).get(n) for n in MEASURED}}


def write_tables(study: optuna.Study, out: Path) -> None:
    trials_frame(study).to_csv(out / "trials.csv", index=False)
    front = pareto_trials(study)
    pd.DataFrame([row(t) for t in front]).to_csv(out / "pareto.csv", index=False)
    records = [
        {
            "trial": t.number,
            "values": t.user_attrs.get("values"),
            "recipe": t.user_attrs.get("recipe"),
            "recipe_id": t.user_attrs.get("recipe_id"),
            "signatures": t.user_attrs.get("signatures"),
            "artifact": t.user_attrs.get("artifact"),
        }
        for t in front
    ]
    summary = {"study": study.study_name, "baseline": study.user_attrs.get("baseline"), "pareto": records}
    (out / "pareto.json").write_text(json.dumps(summary, indent=2))
