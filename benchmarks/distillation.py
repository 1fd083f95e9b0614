"""Distillation benchmark on the demo teacher (issue: compression passes).

One student — 1 decoder layer, half of the attention heads removed — built three ways: without training, fine-tuned
on the references (no teacher), and distilled with the default budget (the default trial). Prints greedy dev BLEU of
the teacher and of each, the training speed and wall time, and for every trial whether the teacher artifacts (head
importances) were built or reused from the cache, with their cost. Writes results/distillation.json.

    python benchmarks/distillation.py [--model demo] [--steps 400] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.evaluate.bleu import score_translations
from autocompress.model.load import load_model
from autocompress.model.translate import translate_texts
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.teacher.context import TeacherContext

RESULTS = Path(__file__).resolve().parent.parent / "results"


def dev_bleu(model: torch.nn.Module, tokenizer: object, dev: object) -> tuple[float, str]:
    hyps = translate_texts(model, tokenizer, list(dev.sources), beam=1, batch_size=32, max_length=128)
    bleu, _ = score_translations(hyps, list(dev.references))
    return round(bleu.score, 2), bleu.signature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--steps", type=int, default=None, help="distillation steps (default: the pass's default)")
    parser.add_argument("--method", default="word")
    parser.add_argument("--cache", type=Path, default=None, help="artifact cache (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "distillation.json")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    loaded = load_model(args.model)
    dev = load_demo("dev")
    cache_root = args.cache or Path(tempfile.mkdtemp(prefix="autocompress-bench-cache-"))
    structure = [("layers", {"decoder_layers": 1}), ("heads", {"fraction": 0.5})]
    distill = {"method": args.method, **({"steps": args.steps} if args.steps is not None else {})}
    rows = {}

    teacher_bleu, signature = dev_bleu(loaded.model, loaded.tokenizer, dev)
    print(f"teacher: dev greedy BLEU {teacher_bleu:.2f} on {len(dev)} verses ({signature})")
    print(f"student: {structure}; torch threads {torch.get_num_threads()}")

    trials = {
        "no training": structure,
        "fine-tuned on references": [*structure, ("distill", {**distill, "method": "finetune"})],
        "distilled (default trial)": [*structure, ("distill", distill)],
    }
    for trial, (name, passes) in enumerate(trials.items()):
        ctx = TeacherContext(loaded.model, loaded.tokenizer, load_demo("train"), ArtifactCache(cache_root))
        recipe = Recipe.make(passes, seed=0)
        started = time.perf_counter()
        metrics: dict = {}
        student = build_student(recipe, ctx, metrics)
        build_seconds = time.perf_counter() - started
        bleu, _ = dev_bleu(student, loaded.tokenizer, dev)
        rows[name] = {
            "recipe": recipe.to_dict(),
            "recipe_id": recipe.id,
            "dev_bleu": bleu,
            "ratio_to_teacher": round(bleu / teacher_bleu, 3),
            "build_seconds": round(build_seconds, 1),
            "metrics": metrics,
        }
        print(f"trial {trial}: {name:26s} dev greedy BLEU {bleu:6.2f} ({bleu / teacher_bleu:4.0%} of the teacher)")
        for kind, info in metrics.get("cache", {}).items():
            state = "reused from the cache" if info["hit"] else "built"
            print(f"    {kind}: {state} (building it cost {info['seconds']:.1f} s)")
        if "distill" in metrics:
            d = metrics["distill"]
            print(f"    training: {d['steps']} steps in {d['seconds']:.0f} s = {d['steps_per_s']:.2f} steps/s")
        print(f"    student built in {build_seconds:.0f} s; {metrics['parameters']:,} parameters")

    result = {
        "teacher": loaded.name,
        "teacher_dev_bleu": teacher_bleu,
        "bleu_signature": signature,
        "dev_sentences": len(dev),
        "students": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
