"""A peer: Microsoft Olive (olive-ai 0.13) searching the quantization subspace of the demo teacher, beside
autocompress searching the same subspace, with the same budget, dev set and measurement harness.

What it took to run Olive fairly on a seq2seq model with a KV cache (each step is in this file):
- Olive's passes would run on each graph of a CompositeModel (encoder + decoder-with-past), but its local system
  cannot evaluate a CompositeModel (NotImplementedError). So Olive gets one ONNX model holding both graphs side by
  side (onnx.compose, names prefixed), and the evaluation splits its output back into the two graphs.
- Its built-in metrics cannot score generation (latency times one forward pass of one graph; accuracy expects one
  output per input), so its evaluator gets two custom metrics (user_script = this file) that run autocompress's
  evaluators on the re-assembled artifact: BLEU of its greedy translations of 200 dev sentences, and p50 ms per
  sentence of generation at batch 1 (one thread, one pinned core).
- Custom metrics crash olive-ai 0.13 before any work under pydantic 2.13 (serialisers of None, a user_config
  serialised as its declared base class): two small patches, _patch_olive_custom_metrics.
Olive searches one pass slot with two alternatives, OnnxDynamicQuantization (its own space: int8/uint8 weights, per
channel, reduce range, pre-processing) and OnnxBlockWiseRtnQuantization (int4 MatMulNBits), with its TPE sampler.
autocompress searches precision-only recipes (onnxruntime int8 dynamic: per channel, Gather; int4: block size,
accuracy level; 10 recipes) with the same objectives (BLEU, latency) and budget. Both fronts are then re-timed side
by side (interleaved, medians). Writes results/benchmarks/olive_peer.{md,csv}.

    pip install -e '.[peer]' && python benchmarks/olive_peer.py [--budget 10]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

WORK_ENV = "AUTOCOMPRESS_OLIVE_WORK"
DEV_SENTENCES = 200
TARGET = {"device": "cpu", "threads": 1, "batch_sizes": [1], "latency_sentences": 16}
SPACE = f"""
description: the quantization subspace, for the Olive peer benchmark (benchmarks/olive_peer.py)
target: {json.dumps(TARGET)}
evaluation: {{dev_sentences: {DEV_SENTENCES}}}
student: teacher
passes:
  precision:
    runtime: onnxruntime
    dtype: {{choice: [int8, int4]}}
    per_channel: {{choice: [false, true]}}
    gather: {{choice: [false, true]}}
    block_size: {{ordered: [32, 64, 128]}}
    accuracy_level: {{choice: [0, 4]}}
"""


# ---- Olive's side: the custom metrics its evaluator calls (this file is Olive's user_script) ----


def olive_bleu(model: Any, device: Any = None, execution_providers: Any = None) -> float:
    return _olive_measure(model)["bleu"]


def olive_latency(model: Any, device: Any = None, execution_providers: Any = None) -> float:
    return _olive_measure(model)["latency_p50_ms"]


def _olive_measure(model: Any) -> dict[str, Any]:
    """Measured once per Olive model (both metrics ask), kept in a JSON-lines log the benchmark reads afterwards."""
    work = Path(os.environ[WORK_ENV])
    path = Path(model.model_path)
    merged = path if path.suffix == ".onnx" else next(path.glob("*.onnx"))
    key = str(merged)
    log = work / "olive_points.jsonl"
    known = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    for point in known:
        if point["key"] == key:
            return point
    artifact = work / "olive-artifacts" / f"{len(known):02d}"
    shutil.copytree(work / "teacher-fp32", artifact, ignore=shutil.ignore_patterns("*.onnx", "*.data"))
    split_graphs(merged, artifact)
    point = {"key": key, "artifact": str(artifact), **measure(artifact)}
    with log.open("a") as f:
        f.write(json.dumps(point) + "\n")
    return point


def merge_graphs(artifact: Path, out: Path) -> Path:
    """Encoder and decoder-with-past as one ONNX model of two disjoint graphs (names prefixed 'encoder/' and
    'decoder/'): Olive 0.13 passes run on a CompositeModel's graphs, but its local system cannot evaluate one."""
    import onnx
    from onnx import compose

    graphs = [compose.add_prefix(onnx.load(artifact / f"{n}.onnx"), f"{n}/") for n in ("encoder", "decoder")]
    out.parent.mkdir(parents=True, exist_ok=True)
    merged = compose.merge_models(*graphs, io_map=[])
    opsets = {o.domain: o.version for o in merged.opset_import}  # merge_models lists each domain twice
    del merged.opset_import[:]
    merged.opset_import.extend(onnx.helper.make_opsetid(domain, v) for domain, v in opsets.items())
    onnx.save(merged, out)
    return out


def split_graphs(merged: Path, artifact: Path) -> None:
    """The two graphs back out of a (quantized) merged model, names unprefixed: a node belongs to a graph when one
    of its outputs is prefixed with the graph's name or feeds a node that belongs; initializers follow their users
    (a quantizer may share a constant between both)."""
    import onnx
    from onnx import helper

    model = onnx.load(merged)
    graph = model.graph
    for name in ("encoder", "decoder"):
        prefix = f"{name}/"
        keep = [any(o.startswith(prefix) for o in node.output) for node in graph.node]
        needed: set[str] = set()
        changed = True
        while changed:
            needed = {i for node, k in zip(graph.node, keep, strict=True) if k for i in node.input}
            grown = [k or any(o in needed for o in node.output) for node, k in zip(graph.node, keep, strict=True)]
            changed, keep = grown != keep, grown
        nodes = [copy.deepcopy(node) for node, k in zip(graph.node, keep, strict=True) if k]

        def strip(text: str, prefix: str = prefix) -> str:
            return text.removeprefix(prefix)

        for node in nodes:
            node.input[:] = [strip(i) for i in node.input]
            node.output[:] = [strip(o) for o in node.output]
            node.name = strip(node.name)
        inits = [copy.deepcopy(i) for i in graph.initializer if i.name in needed]
        for init in inits:
            init.name = strip(init.name)
        io = {"input": [], "output": []}
        for kind in io:
            for value in getattr(graph, kind):
                if value.name.startswith(prefix):
                    io[kind].append(copy.deepcopy(value))
                    io[kind][-1].name = strip(value.name)
        sub = helper.make_graph(nodes, name, io["input"], io["output"], inits)
        out = helper.make_model(sub, opset_imports=model.opset_import, ir_version=model.ir_version)
        onnx.save(out, artifact / f"{name}.onnx")


def measure(artifact: Path) -> dict[str, float]:
    from autocompress.data import load_demo
    from autocompress.evaluate.latency import measure_latency
    from autocompress.evaluate.quality import artifact_quality
    from autocompress.evaluate.size import artifact_size
    from autocompress.runtime import open_artifact
    from autocompress.target import TargetSpec

    target = TargetSpec.from_dict(TARGET)
    dev = load_demo("dev").head(DEV_SENTENCES)
    measured = artifact_quality(open_artifact(artifact, threads=1), dev, target)
    measured |= measure_latency(artifact, list(dev.sources), target)
    measured |= artifact_size(artifact)
    return {k: measured[k].value for k in ("bleu", "latency_p50_ms", "size_mb")}


# ---- the benchmark ----


def _patch_olive_custom_metrics() -> None:
    """olive-ai 0.13 sets a custom metric's backend (and its sub-types' metric_config) to None, then serialises the
    run config before any work with backend.model_dump(): it fails on every custom metric. The two serialisers are
    given code that passes None through; their function objects stay, so every pydantic schema that already holds
    them (the evaluator and run configs) gets the fix."""
    from olive.common.config_utils import ConfigBase
    from olive.evaluator.metric import Metric, SubMetric

    def serialize_backend(self: Any, backend: Any) -> Any:
        return backend if backend is None or isinstance(backend, str) else backend.model_dump()

    def serialize_metric_config(self: Any, metric_config: Any) -> Any:
        return None if metric_config is None else metric_config.model_dump()

    for cls, fixed in ((Metric, serialize_backend), (SubMetric, serialize_metric_config)):
        cls.__pydantic_decorators__.field_serializers[fixed.__name__].func.__code__ = fixed.__code__

    # A metric's user_config is declared as ConfigBase; pydantic 2.13 serialises a field by its declared type, so the
    # custom metric's evaluate_func is dropped when Olive round-trips its configs through JSON. Serialise as the
    # actual class.
    dump = ConfigBase.model_dump

    def model_dump(self: Any, **options: Any) -> Any:
        return dump(self, **{"serialize_as_any": True, **options})

    ConfigBase.model_dump = model_dump


def olive_config(work: Path, budget: int) -> dict[str, Any]:
    metric = {"type": "custom", "user_config": {"user_script": str(Path(__file__).resolve())}}
    return {
        "input_model": {"type": "ONNXModel", "model_path": str(work / "merged" / "model.onnx")},
        "systems": {
            "local": {
                "type": "LocalSystem",
                "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}],
            }
        },
        "evaluators": {
            "mt": {
                "metrics": [
                    {
                        **metric,
                        "name": "bleu",
                        "sub_types": [{"name": "bleu", "priority": 1, "higher_is_better": True}],
                        "user_config": {**metric["user_config"], "evaluate_func": "olive_bleu"},
                    },
                    {
                        **metric,
                        "name": "latency",
                        "sub_types": [{"name": "p50_ms", "priority": 2, "higher_is_better": False}],
                        "user_config": {**metric["user_config"], "evaluate_func": "olive_latency"},
                    },
                ]
            }
        },
        "passes": {"quantize": [{"type": "OnnxDynamicQuantization"}, {"type": "OnnxBlockWiseRtnQuantization"}]},
        "engine": {
            "search_strategy": {"execution_order": "joint", "sampler": "tpe", "max_samples": budget, "seed": 0},
            "evaluator": "mt",
            "host": "local",
            "target": "local",
            "cache_dir": str(work / "olive-cache"),
            "output_dir": str(work / "olive-output"),
            "log_severity_level": 3,
        },
    }


def autocompress_points(out: Path) -> list[dict[str, Any]]:
    import optuna

    from autocompress.passes import PASSES

    PARAMS = PASSES["precision"].params

    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    measured = [study.user_attrs["baseline"]] + [
        t.user_attrs
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if "duplicate_of" not in t.user_attrs
    ]
    points = []
    for attrs in measured:
        params = next(p["params"] for p in attrs["recipe"]["passes"] if p["name"] == "precision")
        config = ", ".join(f"{p.name} {params[p.name]}" for p in PARAMS if p.name != "runtime" and p.relevant(params))
        points.append(
            {
                "tool": "autocompress",
                "config": config,
                "artifact": attrs["artifact"],
                **{k: attrs["values"][k] for k in ("bleu", "latency_p50_ms", "size_mb")},
            }
        )
    return points


def olive_points(work: Path) -> list[dict[str, Any]]:
    points = []
    for line in (work / "olive_points.jsonl").read_text().splitlines():
        point = json.loads(line)
        points.append(
            {
                "tool": "olive",
                "config": _olive_recipe(Path(point["key"])),
                "artifact": point["artifact"],
                **{k: point[k] for k in ("bleu", "latency_p50_ms", "size_mb")},
            }
        )
    return points


def _olive_recipe(model: Path) -> str:
    """The pass and configuration Olive recorded for the run that produced this model (runs/<id>/run.json)."""
    run = model.parent.parent / "run.json"
    if not run.exists():
        return "input model (fp32)"
    recorded = json.loads(run.read_text())
    shown = ("precision", "per_channel", "reduce_range", "quant_preprocess", "bits", "block_size", "accuracy_level")
    config = recorded.get("pass_config") or {}
    return f"{recorded['pass_name']}: " + ", ".join(f"{k} {config[k]}" for k in shown if config.get(k) is not None)


def front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def dominated(p: dict[str, Any]) -> bool:
        return any(
            q["bleu"] >= p["bleu"]
            and q["latency_p50_ms"] <= p["latency_p50_ms"]
            and (q["bleu"], q["latency_p50_ms"]) != (p["bleu"], p["latency_p50_ms"])
            for q in points
        )

    return [p for p in points if not dominated(p)]


def retime(points: list[dict[str, Any]], rounds: int = 3) -> None:
    """Both fronts re-timed side by side: every round times each artifact in turn; the median is kept."""
    import numpy as np

    from autocompress.data import load_demo
    from autocompress.evaluate.latency import measure_latency
    from autocompress.target import TargetSpec

    target, texts = TargetSpec.from_dict(TARGET), list(load_demo("dev").sources[:DEV_SENTENCES])
    times: dict[str, list[float]] = {p["artifact"]: [] for p in points}
    for _ in range(rounds):
        for artifact in times:
            times[artifact].append(measure_latency(Path(artifact), texts, target)["latency_p50_ms"].value)
    for p in points:
        p["p50 ms re-timed side by side"] = round(float(np.median(times[p["artifact"]])), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=10, help="models each tool may evaluate")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "autocompress" / "bench-olive")
    args = parser.parse_args()
    try:
        _patch_olive_custom_metrics()
        from olive.workflows import run as olive_run
    except ImportError:
        sys.exit("olive-ai is not installed: pip install -e '.[peer]' (olive-ai 0.13), then run this again")
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.common import write

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    os.environ[WORK_ENV] = str(args.work)
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from autocompress.export.onnx import export_onnx
    from autocompress.model.load import DEMO_MODEL

    teacher = AutoModelForSeq2SeqLM.from_pretrained(DEMO_MODEL, dtype=torch.float32).eval()
    export_onnx(teacher, AutoTokenizer.from_pretrained(DEMO_MODEL), args.work / "teacher-fp32")
    merge_graphs(args.work / "teacher-fp32", args.work / "merged" / "model.onnx")

    started = time.time()
    olive_run(olive_config(args.work, args.budget))
    olive_seconds = time.time() - started

    space = args.work / "quantization.yaml"
    space.write_text(SPACE)
    started = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "autocompress",
            "search",
            "--space",
            str(space),
            "--budget",
            str(args.budget),
            "--objectives",
            "bleu,latency",
            "--seed",
            "0",
            "--out",
            str(args.work / "autocompress"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ours_seconds = time.time() - started

    ours, theirs = autocompress_points(args.work / "autocompress"), olive_points(args.work)
    fronts = front(ours) + front(theirs)
    retime(fronts)
    on_front = {p["artifact"]: p["p50 ms re-timed side by side"] for p in fronts}
    rows = [
        {
            "tool": p["tool"],
            "config": p["config"],
            "BLEU": p["bleu"],
            "p50 ms (in its search)": round(p["latency_p50_ms"], 2),
            "size MiB": round(p["size_mb"], 1),
            "on its front": "yes" if p["artifact"] in on_front else "",
            "p50 ms re-timed side by side": on_front.get(p["artifact"], ""),
        }
        for p in ours + theirs
    ]
    frame = pd.DataFrame(rows)
    after = [
        f"Wall time of the search: autocompress {ours_seconds / 60:.1f} min ({len(ours)} models measured incl. the "
        f"teacher baseline; each trial also measures chrF and peak RSS in a fresh process, and Ray starts), Olive "
        f"{olive_seconds / 60:.1f} min ({len(theirs)} models evaluated incl. its input; its first sample is an invalid "
        "configuration it prunes and counts).",
    ]
    intro = (
        "Every model each tool's search measured, and its Pareto front (BLEU ↑, p50 latency ↓), searching the "
        f"quantization subspace of the demo teacher with a budget of {args.budget} models each; BLEU on "
        f"{DEV_SENTENCES} dev sentences, latency with one thread on one pinned core; the last column re-times both "
        "fronts side by side (interleaved, median of 3). "
        "Command: `pip install -e '.[peer]' && python benchmarks/olive_peer.py`."
    )
    print(write("olive_peer", frame, "A peer: Olive on the quantization subspace", intro, after), *after, sep="\n\n")


if __name__ == "__main__":
    main()
