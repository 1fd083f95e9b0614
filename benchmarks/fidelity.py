"""Measurement fidelity: the CV of 5 re-measurements of an artifact's p50 latency, alone and while a trial trains.

Three artifacts of the demo teacher — fp32 ONNX, onnxruntime int8 (dynamic) and CTranslate2 int8 — are measured in
turn (interleaved, so a slow phase of a shared machine falls on all three), with the default target (1 thread pinned
to the last core). The concurrent trial is a real distillation on the same cores, run twice: as the search runs it
(its steps pause while a measurement holds the device, autocompress.measure_lock) and, for contrast,
ignoring the lock. Each measurement's repeats are summarised both ways from the same samples: min (the default) and
median.

    python benchmarks/fidelity.py [--model demo]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from autocompress.data import load_demo
from autocompress.evaluate.latency import measure_latency
from autocompress.export.ctranslate2 import export_ctranslate2
from autocompress.export.onnx import export_onnx
from autocompress.export.quantize import quantize_onnx
from autocompress.model.load import load_model
from autocompress.target import STATISTICS, TargetSpec

RESULTS = Path(__file__).resolve().parent.parent / "results"
TRAINER = """
import torch
torch.set_num_threads({threads})
from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.model.load import load_model
from autocompress.teacher.context import TeacherContext
from autocompress.passes.recipe import Recipe
from autocompress.passes.build import build_student
teacher = load_model({model!r})
ctx = TeacherContext(teacher.model, teacher.tokenizer, load_demo("train"), ArtifactCache({cache!r}))
print("training", flush=True)
build_student(Recipe.make([("layers", {{"decoder_layers": 1}}), ("distill", {{"steps": 100000}})]), ctx)
"""


FIXED_WORK: list[float] = []  # the machine's own noise, measured beside every artifact measurement


def fixed_work_ms(target: TargetSpec) -> float:
    """Median of 7 timings of the same pure-Python work on the measured core: a VM's neighbours show up here too."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(target.measured_cores()))
    try:
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            sum(i * i for i in range(300_000))
            timings.append((time.perf_counter() - started) * 1000)
        return float(np.median(timings))
    finally:
        os.sched_setaffinity(0, previous)


def five_measurements(artifacts: dict[str, Path], sentences: list[str], target: TargetSpec) -> dict[str, Any]:
    """Per artifact, the p50 of each of 5 measurements under both summaries of the repeats (the same samples)."""
    found: dict[str, Any] = {name: {stat: [] for stat in STATISTICS} for name in artifacts}
    for _ in range(5):
        for name, artifact in artifacts.items():
            p50 = measure_latency(artifact, sentences, target)["latency_p50_ms"].details["p50_by_statistic"]
            for stat in STATISTICS:
                found[name][stat].append(p50[stat])
        FIXED_WORK.append(fixed_work_ms(target))
    return found


def cv(values: list[float]) -> float:
    return float(np.std(values) / np.mean(values))


def while_training(
    artifacts: dict[str, Path], sentences: list[str], target: TargetSpec, model: str, work: Path, lock_dir: Path | None
) -> dict[str, Any]:
    """Five measurements while a distillation runs in another process; lock_dir None: it shares the search's locks."""
    code = TRAINER.format(threads=os.cpu_count(), model=model, cache=str(work / "cache"))
    env = dict(os.environ) | ({"AUTOCOMPRESS_LOCK_DIR": str(lock_dir)} if lock_dir else {})
    trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert trainer.stdout is not None
        trainer.stdout.readline()  # the teacher is loaded and training starts
        time.sleep(5)
        return five_measurements(artifacts, sentences, target)
    finally:
        trainer.kill()
        trainer.wait()


def build_artifacts(model: str, work: Path) -> dict[str, Path]:
    loaded = load_model(model)
    fp32 = export_onnx(loaded.model, loaded.tokenizer, work / "onnxruntime-fp32")
    int8 = work / "onnxruntime-int8"
    quantize_onnx(fp32, int8, {"dtype": "int8"}, None)
    ct2 = export_ctranslate2(loaded.model, loaded.tokenizer, work / "ctranslate2-int8", quantization="int8")
    return {"onnxruntime fp32": fp32, "onnxruntime int8": int8, "ctranslate2 int8": ct2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--out", type=Path, default=RESULTS / "fidelity.json")
    args = parser.parse_args()
    target = TargetSpec()
    sentences = list(load_demo("dev").sources)
    rows, machine = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        artifacts = build_artifacts(args.model, work)
        rows["alone"] = five_measurements(artifacts, sentences, target)
        machine["alone"] = FIXED_WORK[-5:]
        condition = "training, pausing for measurements"
        rows[condition] = while_training(artifacts, sentences, target, args.model, work, None)
        machine[condition] = FIXED_WORK[-5:]
        (work / "locks").mkdir()
        condition = "training, ignoring the lock"
        rows[condition] = while_training(artifacts, sentences, target, args.model, work, work / "locks")
        machine[condition] = FIXED_WORK[-5:]
    alone = {(a, stat): float(np.median(rows["alone"][a][stat])) for a in artifacts for stat in STATISTICS}
    header = f"{'artifact':17} {'statistic':>9} {'median p50 ms':>14} {'CV':>7} {'vs alone':>9}  five p50 ms"
    print(f"{'':36} {header}")
    for condition, by_artifact in rows.items():
        for name, by_statistic in by_artifact.items():
            for stat, values in by_statistic.items():
                median = float(np.median(values))
                print(
                    f"{condition:36} {name:17} {stat:>9} {median:14.2f} {cv(values):7.2%} "
                    f"{median / alone[(name, stat)]:8.3f}x  {values}"
                )
        print(f"{condition:36} fixed-work probe of the machine: CV {cv(machine[condition]):.2%}")
    print("statistic: how the repeats of a measurement are summarised (min: the default; median: for contrast)")
    print("fixed-work probe: the same pure-Python work timed on the measured core after each round (machine noise)")
    result = {
        "model": args.model,
        "target": target.to_dict(),
        "runs": {
            condition: {
                **{
                    name: {
                        stat: {
                            "p50_ms": values,
                            "cv": round(cv(values), 4),
                            "vs_alone": round(float(np.median(values)) / alone[(name, stat)], 3),
                        }
                        for stat, values in by_statistic.items()
                    }
                    for name, by_statistic in by_artifact.items()
                },
                "fixed_work_ms": [round(v, 3) for v in machine[condition]],
                "fixed_work_cv": round(cv(machine[condition]), 4),
            }
            for condition, by_artifact in rows.items()
        },
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
