"""Cost of a trial: wall time per phase of the default search's trials, by kind of trial.

Runs the README's main command (`autocompress search --budget 6 --seed 0`, the shipped cpu.yaml) once into a work
directory — or reads any finished search with --study — and splits each measured trial's wall time into the worker's
phases (teacher load, student: structure + distillation, fp32 ONNX export, artifact: quantization or CTranslate2
conversion, BLEU, latency, memory) and the driver's overhead (ask, Ray scheduling and transfer, tell: the trial's
time in the study minus the worker's). Medians per kind of trial; writes results/benchmarks/trial_cost.{md,csv}.

    python benchmarks/trial_cost.py [--study results/search]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import README_SEARCH, default_search, write

PHASES = ("load", "student", "export", "artifact", "bleu", "latency", "memory")
LABELS = {"student": "student (structure + distillation)", "artifact": "artifact (quantize / convert)"}


def kind(attrs: dict[str, Any]) -> str:
    passes = {p["name"]: p["params"] for p in attrs["recipe"]["passes"]}
    runtime = passes.get("precision", {}).get("runtime", "onnxruntime")
    if "distill" not in passes:
        return f"precision only ({runtime})"
    cached = attrs.get("metrics", {}).get("student_cached")
    return f"distilled ({runtime}{', student cached' if cached else ''})"


def row(label: str, attrs: dict[str, Any], wall: float | None) -> dict[str, Any]:
    phases, worker = attrs["phases"], attrs.get("worker", {})
    worker_s = worker.get("ended", 0) - worker.get("started", 0) if worker else phases["total"]
    return {
        "kind": label,
        **{p: phases.get(p, 0.0) for p in PHASES},
        "worker total": round(worker_s, 2),
        "driver overhead": round(wall - worker_s, 2) if wall is not None else np.nan,
        "trial wall": round(wall, 2) if wall is not None else round(worker_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, help="a finished search's output directory (default: run one)")
    args = parser.parse_args()
    study_dir = args.study or default_search()
    storage = f"sqlite:///{(study_dir / 'study.db').resolve()}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    rows = [row("teacher baseline (fp32 ONNX)", study.user_attrs["baseline"], None)]
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if "duplicate_of" not in t.user_attrs:
            rows.append(row(kind(t.user_attrs), t.user_attrs, t.duration.total_seconds()))
    trials = pd.DataFrame(rows)
    table = trials.groupby("kind", sort=False).median().round(1)
    table.insert(0, "trials", trials.groupby("kind", sort=False).size())
    table = table.rename(columns=LABELS).reset_index()
    began = min(t.datetime_start for t in study.trials if t.datetime_start)
    ended = max(t.datetime_complete for t in study.trials if t.datetime_complete)
    shares = trials[list(PHASES)].sum() / trials["trial wall"].sum() * 100
    after = [
        "Share of all measured trials' wall time: "
        + ", ".join(f"{LABELS.get(p, p)} {shares[p]:.0f} %" for p in PHASES)
        + f", driver overhead {trials['driver overhead'].sum() / trials['trial wall'].sum() * 100:.1f} %.",
        f"Study: {study_dir} — {len(study.trials)} trials ({len(rows) - 1} measured), trials from first start to "
        f"last end {(ended - began).total_seconds() / 60:.1f} min (the baseline and Ray's start come before).",
    ]
    intro = (
        "Median seconds per phase of the measured trials of the default search, by kind of trial "
        f"(`autocompress search {' '.join(README_SEARCH)}`, cpu.yaml: 120 distillation steps, 1 thread measured "
        "on a pinned core, workers 1). Command: `python benchmarks/trial_cost.py`."
    )
    print(write("trial_cost", table, "Cost of a trial", intro, after), *after, sep="\n\n")


if __name__ == "__main__":
    main()
