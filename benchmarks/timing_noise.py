"""Quiet and loaded timings on this machine: the data behind the disturbed-timing thresholds (evaluate.latency).

The demo teacher as fp32 ONNX, CTranslate2 int8 and CTranslate2 fp32, 32 dev sentences at batch 1, 2 warm-up passes
and 5 timed ones, on the measured core; five rounds, two of them with a busy process pinned to the same core. Per
round: the median per-sentence coefficient of variation across repeats, the median absolute spread (ms), p50; and the
fixed-work probe (evaluate.latency.probe_ms) ten times quiet, with the measured core shared, and with the other core
busy. Writes results/benchmarks/timing_noise.{json,md}.

    python benchmarks/timing_noise.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from autocompress.data import load_demo
from autocompress.evaluate import latency
from autocompress.export.ctranslate2 import export_ctranslate2
from autocompress.export.onnx import export_onnx
from autocompress.measure_lock import exclusive
from autocompress.model.load import load_model
from autocompress.runtime import open_artifact
from autocompress.target import TargetSpec

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"


def busy(core: int) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", "while True: pass"])


def readings(artifact: Path, sentences: list[str], target: TargetSpec) -> np.ndarray:
    """repeats × sentences ms, as measure_latency times them."""
    with exclusive(target):
        runtime = open_artifact(artifact, threads=1, providers=target.providers)
        singles = latency.encode(runtime, sentences)
        found = np.zeros((target.repeats, len(singles)))
        for repeat in range(-target.warmup, target.repeats):
            for i, (ids, mask) in enumerate(singles):
                started = time.perf_counter()
                runtime.generate_ids(ids, mask, target.max_length, beam=1)
                if repeat >= 0:
                    found[repeat, i] = (time.perf_counter() - started) * 1000
        return found


def main() -> None:
    target = TargetSpec()
    core = target.measured_cores()[-1]
    sentences = list(load_demo("dev").sources)[: target.latency_sentences]
    rounds, probes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_model("demo")
        artifacts = {
            "onnx fp32": export_onnx(loaded.model, loaded.tokenizer, Path(tmp) / "onnx", task=loaded.task),
            "ct2 int8": export_ctranslate2(loaded.model, loaded.tokenizer, Path(tmp) / "i8", "int8", task=loaded.task),
            "ct2 fp32": export_ctranslate2(loaded.model, loaded.tokenizer, Path(tmp) / "f32", "float32", loaded.task),
        }
        for loaded_core in (False, False, True, False, True):
            competitor = busy(core) if loaded_core else None
            time.sleep(0.5)
            for name, artifact in artifacts.items():
                per = readings(artifact, sentences, target)
                std = per.std(axis=0)
                rounds.append(
                    {
                        "shared core": loaded_core,
                        "artifact": name,
                        "cv": round(float(np.median(std / per.mean(axis=0))), 4),
                        "jitter ms": round(float(np.median(std)), 3),
                        "p50 ms": round(float(np.median(per.min(axis=0))), 2),
                    }
                )
                print(rounds[-1], flush=True)
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    os.sched_setaffinity(0, {core})
    for name, other in (("quiet", None), ("measured core shared", core), ("other core busy", 1 - core)):
        competitor = busy(other) if other is not None and other >= 0 else None
        time.sleep(0.5)
        probes[name] = [latency.probe_ms() for _ in range(10)]
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    (RESULTS / "timing_noise.json").write_text(json.dumps({"rounds": rounds, "probes": probes}, indent=2))
    lines = ["# Timing noise on this machine: quiet, and with the measured core shared", "", "| shared core | artifact "
             "| CV | jitter ms | p50 ms |", "|---|---|---:|---:|---:|"]  # fmt: skip
    lines += [
        f"| {r['shared core']} | {r['artifact']} | {r['cv']} | {r['jitter ms']} | {r['p50 ms']} |" for r in rounds
    ]
    lines += ["", "| probe_ms | min | max |", "|---|---:|---:|"]
    lines += [f"| {name} | {min(v):.2f} | {max(v):.2f} |" for name, v in probes.items()]
    (RESULTS / "timing_noise.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
