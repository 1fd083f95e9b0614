"""Do parallel trials distort each other's latencies? The same recipes measured by a serial search and by a search with
two workers (while the other worker distils a student), side by side.

Both studies draw from one space in which every recipe keeps the teacher's weights and only the runtime and precision
vary (so both runs measure the same artifacts); during the parallel run a distillation (another trial's training, in
its own process, pausing for measurements as trials do) runs as well. The seed is the same, so both runs suggest the
same first recipes. Prints, per recipe measured by both, the p50 latency
of each run and their ratio; writes results/parallel_latency.json.

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
    serial, parallel = latencies(work / "serial"), latencies(work / "parallel")
    shared = sorted(set(serial) & set(parallel))
    rows = [
        {"recipe": r, "serial_ms": serial[r], "parallel_ms": parallel[r], "ratio": parallel[r] / serial[r]}
        for r in shared
    ]
    print(f"{'recipe':18} {'serial p50 ms':>14} {'parallel p50 ms':>16} {'ratio':>7}")
    for row in rows:
        print(f"{row['recipe']:18} {row['serial_ms']:14.2f} {row['parallel_ms']:16.2f} {row['ratio']:7.3f}")
    ratios = [row["ratio"] for row in rows]
    worst = max(abs(r - 1) for r in ratios) if ratios else float("nan")
    print(f"median ratio {np.median(ratios):.3f}, largest deviation {worst:.1%} (goal: within 5 %)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "median_ratio": float(np.median(ratios)) if ratios else None,
                "largest_deviation": worst,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
