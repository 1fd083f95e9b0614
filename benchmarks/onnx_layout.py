"""Our onnxruntime loop on the standard (Optimum / transformers.js) layout against the layout it replaces.

The demo teacher (and a pruned one-decoder-layer student) exported three ways, each at fp32 and int8:
- **before**: the export of a given git revision (default: the commit before the standard layout), run by that
  revision's own loop — its package is extracted with `git archive` and imported under another name;
- **merged**: onnx/encoder_model*.onnx + onnx/decoder_model_merged*.onnx, what Optimum and transformers.js load;
- **split**: the encoder, cross and step graphs (no `If`), which the finished artifact keeps beside the merged graph
  and our loop runs.
p50 latency at batch 1 (greedy, per sentence, one thread pinned to the last core, as the search measures it),
interleaved in rounds in one process: each sentence's fastest reading over the rounds, median over sentences. The
goal: our loop within 3 % of before (split / before ≤ 1.03); merged / before says what the merged graph's `If`
costs. Writes results/benchmarks/onnx_layout.md.

    python benchmarks/onnx_layout.py [--before REV] [--sentences 40] [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import RESULTS  # noqa: E402


def old_package(revision: str, into: Path) -> Any:
    """autocompress as it was at `revision`, importable as `autocompress_before`."""
    archive = subprocess.run(["git", "archive", revision, "autocompress"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    package = into / "autocompress_before"
    (into / "autocompress").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"\bautocompress\.", "autocompress_before.", text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return importlib.import_module("autocompress_before")


def models() -> dict[str, tuple[Any, Any]]:
    from autocompress.model import arch
    from autocompress.model.load import DEMO_MODEL, load_model

    teacher = load_model(str(DEMO_MODEL))
    student = load_model(str(DEMO_MODEL))
    arch.set_layers(student.model, "decoder", list(arch.layers(student.model, "decoder"))[:1])
    return {"teacher": (teacher.model, teacher.tokenizer), "4+1 student": (student.model, student.tokenizer)}


def build(work: Path, revision: str) -> dict[tuple[str, str, str], Any]:
    """(model, dtype, layout) → an opened runtime."""
    from autocompress.export.layout import standard_layout
    from autocompress.export.onnx import export_onnx
    from autocompress.export.quantize import quantize_onnx
    from autocompress.runtime.onnx_loop import OnnxSeq2Seq

    before = old_package(revision, work / "before-package")
    old_export = importlib.import_module("autocompress_before.export.onnx").export_onnx
    old_apply = importlib.import_module("autocompress_before.passes.precision").apply_artifact
    old_config = importlib.import_module("autocompress_before.recipe").PassConfig
    old_loop = importlib.import_module("autocompress_before.runtime.onnx_loop").OnnxSeq2Seq
    del before
    runtimes: dict[tuple[str, str, str], Any] = {}
    for name, (model, tokenizer) in models().items():
        slug = name.replace(" ", "-").replace("+", "")
        old_fp32 = old_export(model, tokenizer, work / f"{slug}-before-fp32")
        new_fp32 = export_onnx(model, tokenizer, work / f"{slug}-split-fp32")
        for dtype in ("fp32", "int8"):
            if dtype == "fp32":
                old, split = old_fp32, new_fp32
            else:
                old = old_apply(
                    old_fp32, work / f"{slug}-before-{dtype}", old_config.make("precision", {"dtype": dtype})
                )
                split = quantize_onnx(new_fp32, work / f"{slug}-split-{dtype}", {"dtype": dtype})
            merged = shutil.copytree(split, work / f"{slug}-merged-{dtype}")
            standard_layout(merged)
            runtimes[(name, dtype, "before")] = old_loop(old, threads=1)
            runtimes[(name, dtype, "merged")] = OnnxSeq2Seq(merged, threads=1, merged=True)
            runtimes[(name, dtype, "split")] = OnnxSeq2Seq(split, threads=1)
    return runtimes


def timings(runtime: Any, singles: list[tuple[np.ndarray, np.ndarray]], max_new: int) -> list[float]:
    """Milliseconds a sentence."""
    times = []
    for ids, mask in singles:
        started = time.perf_counter()
        runtime.generate_ids(ids, mask, max_new)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="c16b6b6", help="the git revision whose export and loop are the baseline")
    parser.add_argument("--sentences", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from autocompress.data import load_demo

    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # one core, as the search's timings are pinned
    sources = list(load_demo("dev").sources[: args.sentences])
    with tempfile.TemporaryDirectory(prefix="onnx-layout-") as tmp:
        runtimes = build(Path(tmp), args.before)
        singles = {key: [rt.encode([s]) for s in sources] for key, rt in runtimes.items()}
        outputs = {
            key: [rt.generate_ids(*single, 128).tolist() for single in singles[key]] for key, rt in runtimes.items()
        }
        readings: dict[tuple[str, str, str], list[list[float]]] = {key: [] for key in runtimes}
        order = list(runtimes)
        for key in order:  # warm-up
            timings(runtimes[key], singles[key][:5], 128)
        for round_ in range(args.rounds):
            random.Random(round_).shuffle(order)  # interleaved, in a new order each round
            for key in order:
                readings[key].append(timings(runtimes[key], singles[key], 128))
            medians = ", ".join(f"{'/'.join(k)} {np.median(readings[k][-1]):.2f}" for k in runtimes)
            print(f"round {round_ + 1}/{args.rounds}: {medians}", flush=True)
    lines = [
        "# Our loop on the standard ONNX layout against the layout it replaced",
        "",
        f"`python benchmarks/onnx_layout.py --before {args.before} --sentences {args.sentences} --rounds {args.rounds}`"
        " — demo dev sentences, batch 1, greedy, one thread pinned to one core, interleaved rounds: each sentence's"
        " fastest reading, then the median over sentences.",
        "",
        "| model | dtype | before (ms) | split: our loop (ms) | merged (ms) | split / before | merged / before |"
        " same tokens as before |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for name, dtype in dict.fromkeys((k[0], k[1]) for k in runtimes):
        # each sentence's fastest reading over the rounds (the one least disturbed), then the median over sentences
        value = {
            layout: float(np.median(np.min(readings[(name, dtype, layout)], axis=0)))
            for layout in ("before", "merged", "split")
        }
        rows[(name, dtype)] = value
        same = outputs[(name, dtype, "merged")] == outputs[(name, dtype, "split")] == outputs[(name, dtype, "before")]
        lines.append(
            f"| {name} | {dtype} | {value['before']:.2f} | {value['split']:.2f} | {value['merged']:.2f} | "
            f"{value['split'] / value['before']:.3f} | {value['merged'] / value['before']:.3f} | "
            f"{'yes' if same else 'no'} |"
        )
    ratios = {key: (row["split"] / row["before"], row["merged"] / row["before"]) for key, row in rows.items()}
    worst = max(split for split, _ in ratios.values())
    lines += [
        "",
        f"Goal: our loop (split) within 3 % of before in every row: {'met' if worst <= 1.03 else 'missed'} (worst "
        f"{worst:.3f}). The merged graph, which other loaders run, costs {min(m for _, m in ratios.values()):.3f}–"
        f"{max(m for _, m in ratios.values()):.3f}× before.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_layout.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
