"""Do parallel trials distort each other's latencies? The same recipes measured by serial searches and by a search with
two workers (while the other worker distils a student), side by side.

All studies draw from one space in which every recipe keeps the teacher's weights and only the runtime and precision
vary (so every run measures the same artifacts); during the parallel run a distillation (another trial's training, in
its own process, pausing for measurements as trials do) runs as well. The seed is the same, so the runs suggest the
same first recipes. Two serial runs, before and after the parallel one: their mean is the reference, and their ratio
to each other is the control — how far this machine's own re-measurements drift with nothing else running. Prints,
per recipe measured by all runs, each p50 latency, parallel / serial and serial / serial; writes
results/parallel_latency.json.

    python benchmarks/parallel_latency.py [--budget 6]
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
from autocompress.models import load_model
from autocompress.passes.context import PassContext
from autocompress.recipe import Recipe
from autocompress.student import build_student
torch.set_num_threads(1)
teacher = load_model("demo")
ctx = PassContext(teacher.model, teacher.tokenizer, load_demo("train"), ArtifactCache())
build_student(Recipe.make([("layers", {"decoder_layers": 1}), ("distill", {"steps": 100000})]), ctx)
"""


def latencies(study_dir: Path) -> dict[str, float]:
    import optuna

    study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")
    return {
        t.user_attrs["recipe_id"]: t.user_attrs["values"]["latency_p50_ms"]
        for t in study.trials
        if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs
    }


def main() -> None:
    import autocompress

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="6")
    parser.add_argument("--out", type=Path, default=RESULTS / "parallel_latency.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parallel-latency-"))
    (work / "precision.yaml").write_text(PRECISION_ONLY)
    common = {"space": str(work / "precision.yaml"), "seed": 0, "max_bleu_drop": None, "quiet": True}
    autocompress.search("demo", args.budget, workers=1, out=work / "serial", **common)
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER])
    try:
        autocompress.search("demo", args.budget, workers=2, out=work / "parallel", **common)
    finally:
        trainer.kill()
    autocompress.search("demo", args.budget, workers=1, out=work / "serial-again", **common)
    serial, parallel, again = (latencies(work / name) for name in ("serial", "parallel", "serial-again"))
    shared = sorted(set(serial) & set(parallel) & set(again))
    rows = [
        {
            "recipe": r,
            "serial_ms": serial[r],
            "parallel_ms": parallel[r],
            "serial_again_ms": again[r],
            "ratio": parallel[r] / ((serial[r] + again[r]) / 2),
            "control_ratio": again[r] / serial[r],
        }
        for r in shared
    ]
    print(f"{'recipe':18} {'serial':>8} {'parallel':>9} {'serial again':>13} {'parallel/serial':>16} {'control':>8}")
    for row in rows:
        print(
            f"{row['recipe']:18} {row['serial_ms']:8.2f} {row['parallel_ms']:9.2f} {row['serial_again_ms']:13.2f} "
            f"{row['ratio']:16.3f} {row['control_ratio']:8.3f}"
        )
    ratios, controls = [row["ratio"] for row in rows], [row["control_ratio"] for row in rows]
    worst = max(abs(r - 1) for r in ratios) if ratios else float("nan")
    worst_control = max(abs(r - 1) for r in controls) if controls else float("nan")
    print(
        f"parallel / mean of the serial runs: median {np.median(ratios):.3f}, largest deviation {worst:.1%} "
        f"(goal: within 5 %); serial / serial control: largest deviation {worst_control:.1%}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
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
