"""Students against per-trial distillation, and the planned engine with and without start recipes: `autocompress
search` runs on the demo, 2 CPU cores.

- **students**: `search_spaces/cpu.yaml` of 2026-12 (kept run, 2 h) — the teacher's translations of the whole
  training set and the elastic student shipped with the package (their one-off building cost is counted beside the
  curve: read from each entry's meta.json), students sliced from the elastic student and trained 200 steps before
  their first measurement, rungs of 200/800/3200 steps continued, the space's start recipes first.
- **per-trial**: the space every search used before (`benchmarks/spaces/per_trial.yaml`, cpu.yaml of that time):
  each student distilled from scratch for 120 steps (kept run, 2 h).
- **planned**: today's engine and cpu.yaml (a plan up front, the budget bounding the whole run, rung 0 measuring
  slices untrained, doomed timings cut short), `--budget 30m`.
- **planned-no-start**: the same with cpu.yaml's `start:` removed (the search finds its recipes by itself), 2 h.

Hypervolume against search time for each, over the search's own objectives (BLEU ↑, p50 latency ↓, peak RSS ↓), each
taken relative to the teacher measured by the same search (a kept run may come from another machine), then scaled
between the best and the worst value any of these searches measured, reference point 1.1; feasible trials
only (within 1.0 BLEU of the teacher), each student once at its highest rung. Then the fronts at the end, and
benchmarks/alternatives.py on the students search's selected model (its own table, interleaved against CTranslate2
int8 of the teacher).

Each search runs in its own process into --workdir/<engine>; the benchmark notes the search time spent every 30 s,
so a run cut off (a session ending) resumes its study with what is left of its budget, and the time axis leaves the
gap out. A finished engine's study and time log are kept in results/benchmarks/students-runs/<engine>/, and a
later run (an empty cache) compares against them instead of running that engine again. Goals: the planned engine
reaches the kept students run's final 2-hour hypervolume within 30 min of search; without start recipes it reaches
≥ 90 % of it within 2 h; the students search reached the per-trial search's 2-hour hypervolume within 1 hour.
Writes results/benchmarks/students.{md,csv,png}.

    python benchmarks/students.py [--engines planned,planned-no-start] [--budget ENGINE=30m,...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import optuna
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, write

HERE = Path(__file__).resolve().parent
# engine: (space, budget). "students" runs today's cpu.yaml if its kept run is deleted; "planned-no-start" is
# cpu.yaml without `start:`, written into the workdir when it runs.
ENGINES = {
    "students": ("cpu", "2h"),
    "per-trial": (str(HERE / "spaces" / "per_trial.yaml"), "2h"),
    "planned": ("cpu", "30m"),
    "planned-no-start": ("no-start", "2h"),
}
WORKDIR = Path.home() / ".cache" / "autocompress" / "bench-students"
BEAT = 30.0  # seconds between notes of the time spent
# A finished engine's study and time log, kept with the results: a later session (a fresh machine, an empty cache)
# compares against them instead of running that engine again; its trials' values and completion times are all the
# curves need. Delete an engine's folder to run it again.
KEPT = RESULTS / "students-runs"
KEEP_EVERY = 10  # beats between copies of a running engine's study to KEPT


def run_search(engine: str, budget_s: float, workdir: Path) -> Path:
    """Run (or resume) one engine's search until its search time reaches the budget, or the search ends by itself (a
    space it finds exhausted); returns its output directory."""
    out, log = workdir / engine, workdir / f"{engine}.json"
    restore_kept(engine, workdir)
    runs, finished = read_runs(log)
    spent = sum(end - start for start, end in runs)
    if finished or spent >= budget_s - 60:  # done (a minute short is the driver finishing its last trials early)
        return out
    space = ENGINES[engine][0]
    if space == "no-start":
        space = str(without_start(workdir))
    command = [sys.executable, "-m", "autocompress", "search", "--space", space, "--seed", "0"]
    command += ["--budget", f"{int(budget_s - spent)}s", "--out", str(out)]
    print(f"{engine}: {spent / 60:.0f} min spent, running {' '.join(command[2:])}", flush=True)
    started = time.time()
    runs.append([started, started])
    stopped: list[int] = []  # a session ending stops the benchmark: the search is stopped too, and resumes later
    with subprocess.Popen(command) as search:
        signal.signal(signal.SIGTERM, lambda number, _frame: (stopped.append(number), search.terminate()))
        beats = 0
        while search.poll() is None:
            time.sleep(BEAT)
            runs[-1][1] = time.time()
            log.write_text(json.dumps({"runs": runs, "finished": False, "budget_s": budget_s}))
            beats += 1
            if beats % KEEP_EVERY == 0:  # a session's end cuts the run: what it measured so far is kept
                keep(engine, workdir)
    runs[-1][1] = time.time()
    # A search stopped (SIGTERM) ends cleanly with code 0 too: only one that ended by itself is finished.
    finished = search.returncode == 0 and not stopped
    log.write_text(json.dumps({"runs": runs, "finished": finished, "budget_s": budget_s}))
    keep(engine, workdir)
    if search.returncode != 0 or stopped:
        said = " (stopped; run the benchmark again to resume it)" if stopped else ""
        raise SystemExit(f"{engine}: the search exited {search.returncode}{said}")
    return out


def without_start(workdir: Path) -> Path:
    """cpu.yaml with its start recipes removed: what the search finds by itself."""
    import yaml

    from autocompress.space import SPACES_DIR

    space = yaml.safe_load((SPACES_DIR / "cpu.yaml").read_text())
    space.pop("start")
    space["description"] = space["description"].strip() + " (start recipes removed by benchmarks/students.py)"
    path = workdir / "cpu_no_start.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False, allow_unicode=True))
    return path


def keep(engine: str, workdir: Path) -> None:
    """Copy an engine's study and time log to KEPT (SQLite's backup API: a consistent copy while the search writes)."""
    import sqlite3

    kept = KEPT / engine
    kept.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(workdir / engine / "study.db") as source, sqlite3.connect(kept / "study.db.new") as copy:
        source.backup(copy)
    (kept / "study.db.new").replace(kept / "study.db")
    shutil.copy2(workdir / f"{engine}.json", kept / "runs.json")


def restore_kept(engine: str, workdir: Path) -> bool:
    """Put an engine's kept run into an empty workdir (a fresh machine); whether the workdir now has a run of it."""
    kept, log = KEPT / engine, workdir / f"{engine}.json"
    if not log.exists() and (kept / "study.db").exists():
        (workdir / engine).mkdir(parents=True, exist_ok=True)
        shutil.copy2(kept / "study.db", workdir / engine / "study.db")
        shutil.copy2(kept / "runs.json", log)
        print(f"{engine}: the run kept in {kept} (delete it to run the engine again)", flush=True)
    return log.exists()


def read_runs(log: Path) -> tuple[list[list[float]], bool]:
    """The [start, end] wall-clock times of each run of one engine's search, and whether the search ended by itself
    (the first format, a bare list, did not record that)."""
    if not log.exists():
        return [], False
    recorded = json.loads(log.read_text())
    if isinstance(recorded, list):
        return recorded, False
    return recorded["runs"], bool(recorded["finished"])


def search_time(runs: list[list[float]], moment: float) -> float:
    """Seconds of search before `moment` (a wall-clock time), the gaps between runs left out."""
    return sum(max(0.0, min(end, moment) - start) for start, end in runs)


def points(out: Path, workdir: Path, engine: str) -> tuple[list[tuple[float, list[float]]], Any]:
    """(search time at completion, objective values relative to the search's own teacher baseline) of each feasible
    current trial, and the study view. Relative, because a kept run may have been measured on another machine (a
    session's VM): latency in ms is not comparable across machines, the ratio to the teacher timed by the same search
    on the same machine is (BLEU's ratio is BLEU up to a constant: both teachers score the same). The time leaves out
    the teacher artifacts' one-off cost (shipped for the demo); `prepared_seconds` gives it."""
    from autocompress.engine.view import study_view

    view = study_view(optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}"))
    baseline = np.array([view.baseline["values"][measure.key] for measure in view.objectives])
    runs, _ = read_runs(workdir / f"{engine}.json")
    found = []
    for trial in view.feasible:
        moment = trial.datetime_complete.timestamp() if isinstance(trial.datetime_complete, datetime) else 0.0
        found.append((search_time(runs, moment), list(np.array(trial.values) / baseline)))
    return sorted(found), view


def prepared_seconds(view: Any) -> float:
    """What building the teacher-derived artifacts the search found ready cost (their meta.json)."""
    paths = {
        record["path"]
        for trial in view.measured
        for record in trial.user_attrs.get("metrics", {}).get("student", {}).get("cache", {}).values()
    }
    metas = [Path(path) / "meta.json" for path in paths]
    return sum(json.loads(meta.read_text())["seconds"] for meta in metas if meta.exists())


def hypervolume_curves(
    found: dict[str, list[tuple[float, list[float]]]], directions: list[str], grid: np.ndarray
) -> dict[str, list[float]]:
    from optuna._hypervolume import compute_hypervolume  # Optuna's own (WFG); its public API only plots it

    values = np.array([v for rows in found.values() for _, v in rows])
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    low, high = (values * sign).min(0), (values * sign).max(0)
    curves = {}
    for engine, rows in found.items():
        curve = []
        for moment in grid:
            done = [np.array(v) * sign for t, v in rows if t <= moment]
            scaled = [(p - low) / np.where(high > low, high - low, 1.0) for p in done]
            curve.append(compute_hypervolume(np.array(scaled), np.full(len(sign), 1.1)) if scaled else 0.0)
        curves[engine] = curve
    return curves


def main() -> None:
    from autocompress.engine.budget import parse_budget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="planned,planned-no-start")
    parser.add_argument("--budget", default="", help="ENGINE=TIME,... overriding ENGINES' budgets")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    budgets = {engine: parse_budget(budget).seconds or 7200.0 for engine, (_, budget) in ENGINES.items()}
    for given in filter(None, args.budget.split(",")):
        engine, _, budget = given.partition("=")
        budgets[engine] = parse_budget(budget).seconds or 7200.0
    args.workdir.mkdir(parents=True, exist_ok=True)
    listed = args.engines.split(",")
    outs = {engine: run_search(engine, budgets[engine], args.workdir) for engine in listed}
    for engine in ENGINES.keys() - set(listed):  # compared as it stands: kept from an earlier session, not run
        if restore_kept(engine, args.workdir):
            outs[engine] = args.workdir / engine
    engines = [engine for engine in ENGINES if engine in outs]
    found, views = {}, {}
    for engine, out in outs.items():
        found[engine], views[engine] = points(out, args.workdir, engine)
    directions = [d.name.lower() for d in views[engines[0]].study.directions]
    longest = max(budgets[engine] for engine in engines)
    grid = np.arange(0, longest + 600, 300.0)
    curves = hypervolume_curves(found, directions, grid)
    frame = pd.DataFrame({"search minutes": grid / 60, **{f"hypervolume, {e}": curves[e] for e in engines}})
    after = goals(curves, grid, views)
    for engine, view in views.items():
        structural = [t for t in view.front if _structural(t)]
        runs, finished = read_runs(args.workdir / f"{engine}.json")
        spent = sum(end - start for start, end in runs)
        early = ""
        if spent < budgets[engine] - 60:
            early = (
                f" It stopped by itself after {spent / 60:.0f} min of search: its last 30 suggestions all repeated "
                "measured recipes (the driver's sign of an exhausted space), or its plan found no trial left to "
                "fit, so its final hypervolume is its whole budget's."
                if finished
                else f" Its run was cut after {spent / 60:.0f} min of search (a session's end): its curve stops there."
            )
        teacher = view.baseline["values"]
        after.append(
            f"{engine}: {len(view.measured)} trials measured, front of {len(view.front)}, of which "
            f"{len(structural)} structurally compressed within the BLEU drop; selected trial "
            f"{view.selected.number if view.selected else None}.{early} Its teacher (fp32 ONNX, the baseline its "
            f"objectives are taken relative to): BLEU {teacher['bleu']}, p50 {teacher['latency_p50_ms']} ms, peak RSS "
            f"{teacher['peak_rss_mb']} MiB."
        )
    write(
        "students",
        frame.round(4),
        "Students, per-trial distillation and the planned engine: hypervolume against search time",
        __doc__.split("\n\n")[1],
        after,
    )
    _plot(frame, engines)
    if "students" in outs and not (outs["students"] / "best").is_dir():
        # a kept run holds its study and time log, not its exported model: alternatives.md stands as measured then
        print("students: compared as kept (no best/ here); benchmarks/alternatives.py not run again", flush=True)
    elif "students" in outs:
        space, budget = ENGINES["students"]
        made_by = "the students engine of `python benchmarks/students.py --engines students`: " + (
            f"`autocompress search --space {space} --seed 0 --budget {budget}`"
        )
        command = [sys.executable, str(HERE / "alternatives.py"), "--study", str(outs["students"])]
        subprocess.run([*command, "--made-by", made_by], check=True)


def goals(curves: dict[str, list[float]], grid: np.ndarray, views: dict[str, Any]) -> list[str]:
    """The goals' sentences, each hypervolume read on the one scale all curves share."""

    def reached(engine: str, value: float) -> float | None:
        return next((g for g, hv in zip(grid, curves[engine], strict=True) if hv >= value), None)

    def at(engine: str, seconds: float) -> float:
        return curves[engine][int(np.searchsorted(grid, seconds))]

    said = []
    if {"students", "per-trial"} <= curves.keys():
        final, when = at("per-trial", 7200), reached("students", at("per-trial", 7200))
        once = prepared_seconds(views["students"])
        said.append(
            f"The students search reaches the per-trial search's final hypervolume ({final:.4f}) "
            + (
                f"after {when / 60:.0f} min of search ({(when + once) / 60:.0f} min counting the one-off "
                f"{once / 60:.0f} min of building its teacher artifacts, shipped for the demo)."
                if when is not None
                else "not within 2 h."
            )
        )
    if "students" not in curves:
        return said
    kept = at("students", 7200)
    for engine, share, within in (("planned", 1.0, 1800), ("planned-no-start", 0.9, 7200)):
        if engine in curves:
            when = reached(engine, share * kept)
            verdict = "met" if when is not None and when <= within else "missed"
            said.append(
                f"Goal {verdict}: {engine} reaches {share:.0%} of the kept students run's 2-hour hypervolume "
                f"({share * kept:.4f}) "
                + (f"after {when / 60:.0f} min of search" if when is not None else "not within its run")
                + f" (goal: within {within / 60:.0f} min); its own final: {max(curves[engine]):.4f}."
            )
    return said


def _structural(trial: Any) -> bool:
    names = {p["name"] for p in trial.user_attrs.get("recipe", {}).get("passes", [])}
    return bool(names & {"layers", "heads", "ffn"})


def _plot(frame: pd.DataFrame, engines: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for engine in engines:
        axes.plot(frame["search minutes"], frame[f"hypervolume, {engine}"], label=engine)
    axes.set_xlabel("search time (min; the shipped teacher artifacts' one-off cost not included)")
    axes.set_ylabel("hypervolume (scaled objectives)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "students.png", dpi=120)


if __name__ == "__main__":
    main()
