"""Do parallel trials distort each other's latencies? The same recipes measured by serial searches and by a search with
two workers (while the other worker distils a student), side by side.

All studies draw from one space in which every recipe keeps the teacher's weights and only the runtime and precision
vary (so every run measures the same artifacts); during the parallel run a distillation (another trial's training, in
its own process, pausing for measurements as trials do) runs as well. The seed is the same, so the runs suggest the
same first recipes. Serial and parallel runs alternate (S P S … P S: --rounds parallel runs, default 12, 25-50
minutes on 2 cores), so slow phases of a shared machine fall on both kinds; per recipe measured by every run, the
median of the parallel runs is compared with the median of the serial runs, with a bootstrap 95 % interval (runs
resampled with replacement): on a shared VM a memory-bound artifact's re-measurements drift 5-8 % over minutes
(results/fidelity.json), so a few pairs of runs cannot resolve a 5 % effect and more rounds narrow the interval.
The control compares serial runs with serial runs the same way (the median of the inner ones against the median of
the first and last): how far this machine's own re-measurements drift with nothing else running. Writes
results/parallel_latency.json.

    python benchmarks/parallel_latency.py [--budget 6] [--rounds 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent.parent / "results"
PRECISION_ONLY = """
target: {device: cpu, threads: 1, batch_sizes: [1, 16], max_length: 128}
evaluation: {dev_sentences: 200}
student: teacher
passes:
  precision:
    runtime: {choice: [onnxruntime, ctranslate2]}
    dtype: {choice: [fp32, int8, int4, int16]}
"""
TRAINER = """
import torch
from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.model.load import load_model
from autocompress.teacher.context import TeacherContext
from autocompress.passes.recipe import Recipe
from autocompress.passes.build import build_student
torch.set_num_threads(1)
teacher = load_model("demo")
ctx = TeacherContext(teacher.model, teacher.tokenizer, load_demo("train"), ArtifactCache())
build_student(Recipe.make([("layers", {"decoder_layers": 1}), ("distill", {"steps": 100000})]), ctx)
"""


def latencies(study_dir: Path, labels: dict[str, str]) -> dict[str, float]:
    """p50 per recipe measured by the study; `labels` gets each recipe's runtime and dtype (e.g. "onnxruntime int8")."""
    import optuna

    study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")
    found = {}
    for t in study.trials:
        if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs:
            precision = next(p["params"] for p in t.user_attrs["recipe"]["passes"] if p["name"] == "precision")
            labels[t.user_attrs["recipe_id"]] = f"{precision['runtime']} {precision['dtype']}"
            found[t.user_attrs["recipe_id"]] = t.user_attrs["values"]["latency_p50_ms"]
    return found


def bootstrap_interval(serial: list[float], parallel: list[float], draws: int = 10_000) -> tuple[float, float]:
    """95 % interval of median(parallel) / median(serial), resampling each kind of run with replacement."""
    rng = np.random.default_rng(0)
    s = np.median(rng.choice(serial, (draws, len(serial))), axis=1)
    p = np.median(rng.choice(parallel, (draws, len(parallel))), axis=1)
    low, high = np.percentile(p / s, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    import autocompress

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="6")
    parser.add_argument("--rounds", type=int, default=12, help="parallel runs; serial runs before, between and after")
    parser.add_argument("--out", type=Path, default=RESULTS / "parallel_latency.json")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: the control compares inner serial runs with the first and last")
    work = Path(tempfile.mkdtemp(prefix="parallel-latency-"))
    (work / "precision.yaml").write_text(PRECISION_ONLY)
    common = {"space": str(work / "precision.yaml"), "seed": 0, "max_bleu_drop": None, "quiet": True}
    serial, parallel = [], []
    labels: dict[str, str] = {}
    for run in range(2 * args.rounds + 1):
        out, started = work / f"run-{run}", time.monotonic()
        kind = "parallel" if run % 2 else "serial"
        if kind == "serial":
            autocompress.search("demo", args.budget, workers=1, out=out, **common)
            serial.append(latencies(out, labels))
        else:
            trainer = subprocess.Popen([sys.executable, "-c", TRAINER])
            try:
                autocompress.search("demo", args.budget, workers=2, out=out, **common)
            finally:
                trainer.kill()
            parallel.append(latencies(out, labels))
        print(f"run {run + 1}/{2 * args.rounds + 1} ({kind}): {time.monotonic() - started:.0f} s", flush=True)
    shared = sorted(set.intersection(*(set(run) for run in serial + parallel)))
    rows = []
    for r in shared:
        s, p = [run[r] for run in serial], [run[r] for run in parallel]
        rows.append(
            {
                "recipe": r,
                "artifact": labels[r],
                "serial_ms": s,
                "parallel_ms": p,
                "ratio": float(np.median(p) / np.median(s)),
                "ratio_95": bootstrap_interval(s, p),
                # serial runs in the parallel runs' place: how far the machine alone drifts between runs
                "control_ratio": float(np.median(s[1:-1]) / np.median([s[0], s[-1]])),
            }
        )
    header = f"{'artifact':18} {'serial ms (median)':>18} {'parallel ms (median)':>20} {'parallel/serial [95 %]':>24}"
    print(f"{header} {'control':>8}")
    for row in rows:
        low, high = row["ratio_95"]
        print(
            f"{row['artifact']:18} {np.median(row['serial_ms']):18.2f} {np.median(row['parallel_ms']):20.2f} "
            f"{row['ratio']:9.3f} [{low:.3f}, {high:.3f}] {row['control_ratio']:8.3f}"
        )
    ratios, controls = [row["ratio"] for row in rows], [row["control_ratio"] for row in rows]
    worst = max(abs(r - 1) for r in ratios) if ratios else float("nan")
    worst_control = max(abs(r - 1) for r in controls) if controls else float("nan")
    print(
        f"median of parallel runs / median of serial runs: median {np.median(ratios):.3f}, largest deviation "
        f"{worst:.1%} (goal: within 5 %); control (inner serial runs / first and last): largest "
        f"deviation {worst_control:.1%}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "rounds": args.rounds,
                "budget": args.budget,
                "median_ratio": float(np.median(ratios)) if ratios else None,
                "largest_deviation": worst,
                "control_largest_deviation": worst_control,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
