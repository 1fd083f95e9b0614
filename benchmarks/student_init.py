"""Where a student starts: cut from the teacher's layers, or sliced from the elastic student — on the same structures,
trained the same steps.

Each structure of the CPU space (`search_spaces/cpu.yaml`) is built twice — `init: teacher` (today's
importance-ordered cut of the teacher) and `init: elastic` (the weight-shared student `autocompress prepare --space
students` trains once) — and distilled on the teacher's translations of the whole training set with the space's
distillation settings, through the space's rungs: the state before the cool-down carries over from one rung to the
next exactly as in a search. Dev greedy BLEU (sacrebleu, the whole dev set, PyTorch) at 0 steps and after each rung.
The elastic student's one-off cost is read from its cache entry and printed beside the per-student costs, so the
comparison at equal cost can be read both ways: per trial (same steps) and with the one-off cost spread over the
students of a search. Resumable: rows already in the JSON are kept.

    python benchmarks/student_init.py [--structures A,B,C] [--rungs 200,800] [--lr 0.001]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.engine.model_info import model_info
from autocompress.engine.worker import training_states
from autocompress.evaluate.bleu import score_translations
from autocompress.model.load import load_model
from autocompress.model.translate import translate_texts
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.space import load_space
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.elastic import settings_from_space

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"
# (encoder layers, decoder layers, fraction of heads removed, FFN neurons kept): deep-shallow at full width, the same
# narrowed, and the smallest corner of the space
STRUCTURES = {"A": (4, 1, 0.0, 1.0), "B": (4, 1, 0.5, 0.5), "C": (2, 1, 0.5, 0.5), "D": (4, 2, 0.0, 1.0)}


def dev_bleu(model: torch.nn.Module, tokenizer: Any, dev: Any) -> tuple[float, str]:
    hyps = translate_texts(model, tokenizer, list(dev.sources), beam=1, batch_size=32, max_length=128)
    bleu, _ = score_translations(hyps, list(dev.references))
    return round(bleu.score, 2), bleu.signature


def recipe(structure: tuple[int, int, float, float], init: str, steps: int, distill: dict[str, Any]) -> Recipe:
    encoder, decoder, heads, ffn = structure
    passes: list[tuple[str, dict[str, Any]]] = [
        ("init", {"source": init}),
        ("layers", {"encoder_layers": encoder, "decoder_layers": decoder, "strategy": "importance"}),
        ("heads", {"fraction": heads, "allocation": "uniform"}),
        ("ffn", {"keep": ffn}),
    ]
    if steps:
        passes.append(("distill", {**distill, "steps": steps, "schedule": "wsd"}))
    return Recipe.make(passes, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", default="A,B,C", help=f"which of {STRUCTURES}")
    parser.add_argument("--rungs", default="200,800", help="training steps at which BLEU is measured")
    parser.add_argument("--space", default="cpu")
    parser.add_argument("--lr", type=float, default=1e-3, help="the students' peak rate (the space searches it)")
    parser.add_argument("--inits", default="teacher,elastic", help="which initialisations: teacher, elastic")
    parser.add_argument("--out", type=Path, default=RESULTS / "student_init.json")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    space = load_space(args.space)
    settings = settings_from_space(space, model_info("demo").layers)
    fixed = [d for d in space.dimensions if d.name.startswith("distill.") and d.kind == "fixed"]
    distill = {**{d.name.split(".")[1]: d.values[0] for d in fixed}, "lr": args.lr}
    rungs = [int(r) for r in args.rungs.split(",")]
    loaded = load_model("demo")
    dev = load_demo("dev")
    found: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    found.setdefault("rows", {})
    for key in [k for k in found["rows"] if k.count("/") == 1]:  # rows from before the rate was a column
        found["rows"][key].setdefault("lr", found["distill"]["lr"])
        found["rows"][f"{key}/{found['distill']['lr']:g}"] = found["rows"].pop(key)
    if "teacher_dev_bleu" not in found:
        found["teacher_dev_bleu"], found["bleu_signature"] = dev_bleu(loaded.model, loaded.tokenizer, dev)
    print(f"teacher: dev greedy BLEU {found['teacher_dev_bleu']} ({found['bleu_signature']})", flush=True)
    states = Path(tempfile.mkdtemp(prefix="student-init-states-"))  # the rungs' carried-over training states
    for name in args.structures.split(","):
        for init in args.inits.split(","):
            row_key = f"{name}/{init}/{args.lr:g}"
            if row_key in found["rows"] and all(str(r) in found["rows"][row_key]["bleu"] for r in [0, *rungs]):
                continue
            row: dict[str, Any] = {"structure": STRUCTURES[name], "init": init, "lr": args.lr}
            row.update(bleu={}, seconds={})
            for steps in [0, *rungs]:
                ctx = TeacherContext(
                    loaded.model, loaded.tokenizer, load_demo("train"), ArtifactCache(), task=loaded.task
                )
                ctx.elastic = lambda ctx=ctx: ctx.elastic_student(settings)
                training = recipe(STRUCTURES[name], init, steps, distill)
                metrics: dict = {}
                started = time.perf_counter()
                student = build_student(training, ctx, metrics, *training_states(states, training))
                row["seconds"][str(steps)] = round(time.perf_counter() - started, 1)
                row["bleu"][str(steps)], _ = dev_bleu(student, loaded.tokenizer, dev)
                row["parameters"] = metrics.get("parameters")
                if "elastic" in metrics.get("cache", {}):
                    found["elastic_build_seconds"] = metrics["cache"]["elastic"]["seconds"]
                print(f"{row_key} {steps:5d} steps: dev BLEU {row['bleu'][str(steps)]:6.2f}", flush=True)
            found["rows"][row_key] = row
            found.update(
                rungs=sorted({*found.get("rungs", []), *rungs}),
                distill=distill,
                elastic=settings.to_dict(),
                torch=torch.__version__,
                threads=torch.get_num_threads(),
                machine=platform.processor() or platform.machine(),
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(found, indent=2))
    write_table(found, args.out.with_suffix(".md"))


def write_table(found: dict[str, Any], path: Path) -> None:
    rungs = [0, *found["rungs"]]
    teacher = found["teacher_dev_bleu"]
    lines = [
        "# Where a student starts: the teacher's layers or the elastic student",
        "",
        f"Dev greedy BLEU of the demo students (teacher {teacher}; {found['bleu_signature']}), each trained on the "
        f"teacher's translations with {found['distill']} (the peak rate per row), carried over between rungs. "
        "The elastic student "
        f"({found['elastic']['steps']} sandwich steps) cost {found.get('elastic_build_seconds', float('nan')):.0f} s "
        "once, for every structure of the space.",
        "",
        "| structure (enc, dec, heads removed, FFN kept) | init | lr | "
        + " | ".join(f"{r} steps" for r in rungs)
        + " |",
        "|---|---|---:|" + "---:|" * len(rungs),
    ]
    for row in found["rows"].values():
        cells = [f"{row['bleu'][str(r)]:.2f}" if str(r) in row["bleu"] else "" for r in rungs]
        lines.append(f"| {tuple(row['structure'])} | {row['init']} | {row['lr']:g} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
