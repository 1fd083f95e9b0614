"""Measurement fidelity: the CV of 5 re-measurements of one artifact's p50 latency, alone and while a trial trains.

The artifact (the demo teacher, fp32 ONNX) is measured on its own core set (by default the last core, 1 thread);
the concurrent trial — a real distillation — is pinned to the other cores, as the search schedules them.

    python benchmarks/fidelity.py [--model demo] [--measure-cores 1] [--train-cores 0]
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from autocompress.data import load_demo
from autocompress.evaluate.latency import measure_latency
from autocompress.export.onnx import export_onnx
from autocompress.models import load_model
from autocompress.target import TargetSpec

RESULTS = Path(__file__).resolve().parent.parent / "results"
TRAINER = """
import os, sys, torch
os.sched_setaffinity(0, {cores})
torch.set_num_threads({threads})
from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.models import load_model
from autocompress.passes.context import PassContext
from autocompress.recipe import Recipe
from autocompress.student import build_student
teacher = load_model({model!r})
ctx = PassContext(teacher.model, teacher.tokenizer, load_demo("train"), ArtifactCache({cache!r}))
print("training", flush=True)
build_student(Recipe.make([("layers", {{"decoder_layers": 1}}), ("distill", {{"steps": 100000}})]), ctx)
"""


def five_measurements(artifact: Path, sentences: list[str], target: TargetSpec) -> list[float]:
    return [measure_latency(artifact, sentences, target)["latency_p50_ms"].value for _ in range(5)]


def cv(values: list[float]) -> float:
    return float(np.std(values) / np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--measure-cores", default=str(os.cpu_count() - 1))
    parser.add_argument("--train-cores", default=",".join(str(c) for c in range(os.cpu_count() - 1)))
    parser.add_argument("--out", type=Path, default=RESULTS / "fidelity.json")
    args = parser.parse_args()
    measure_cores = tuple(int(c) for c in args.measure_cores.split(","))
    train_cores = {int(c) for c in args.train_cores.split(",")}
    target = TargetSpec(threads=len(measure_cores), cores=measure_cores, latency_sentences=16, warmup=1, repeats=3)

    loaded = load_model(args.model)
    sentences = list(load_demo("dev").sources)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = export_onnx(loaded.model, loaded.tokenizer, Path(tmp) / "artifact")
        alone = five_measurements(artifact, sentences, target)
        print(f"alone:           p50 {np.median(alone):7.2f} ms, CV {cv(alone):.2%} over {alone}")
        code = TRAINER.format(cores=train_cores, threads=len(train_cores), model=args.model, cache=str(Path(tmp) / "c"))
        trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert trainer.stdout is not None
            trainer.stdout.readline()  # the teacher is loaded and training starts
            time.sleep(5)
            busy = five_measurements(artifact, sentences, target)
        finally:
            trainer.kill()
        print(f"while training:  p50 {np.median(busy):7.2f} ms, CV {cv(busy):.2%} over {busy}")
        print(f"slowdown of the median under a concurrent trial: {np.median(busy) / np.median(alone):.3f}x")
    result = {
        "model": loaded.name,
        "target": target.to_dict(),
        "train_cores": sorted(train_cores),
        "alone_p50_ms": alone,
        "alone_cv": round(cv(alone), 4),
        "busy_p50_ms": busy,
        "busy_cv": round(cv(busy), 4),
        "slowdown": round(float(np.median(busy) / np.median(alone)), 3),
        "machine": platform.processor(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
