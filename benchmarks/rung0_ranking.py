"""How well the free first rung ranks students: structures sliced from the elastic student, their dev BLEU untrained
(rung 0, what a search now measures first) against the same students trained 200 and 800 steps.

Sixteen structures of the CPU space (`search_spaces/cpu.yaml`: encoder and decoder depth, heads removed, FFN kept),
drawn with a fixed seed from its grid, each distilled on the teacher's translations with the space's settings (lr
1e-4, the wsd schedule, the state before the cool-down carried from 200 to 800 steps exactly as a search's rungs do).
Dev greedy BLEU (sacrebleu, the whole dev set, PyTorch fp32) at 0, 200 and 800 steps; Kendall's τ (scipy, tau-b)
between the rankings, and how many of the best quarter after 800 steps rung 0's best quarter already holds. Training
does not change a structure's latency or size, so BLEU is the whole of what a rung can reorder. Resumable: structures
already in the JSON are kept.

    python benchmarks/rung0_ranking.py [--count 16] [--rungs 200,800] [--lr 0.0001]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.engine.model_info import model_info
from autocompress.engine.worker import training_states
from autocompress.model.load import load_model
from autocompress.passes.build import build_student
from autocompress.space import load_space
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.elastic import settings_from_space
from benchmarks.student_init import dev_bleu, recipe

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"


def structures(settings: Any, count: int) -> list[tuple[int, int, float, float]]:
    """`count` distinct structures of the elastic student's grid, with its largest and smallest corners."""
    grid = list(
        itertools.product(
            range(settings.encoder_layers[0], settings.encoder_layers[1] + 1),
            range(settings.decoder_layers[0], settings.decoder_layers[1] + 1),
            settings.heads_removed,
            settings.ffn_keep,
        )
    )
    corners = [max(grid, key=lambda s: (s[0], s[1], -s[2], s[3])), min(grid, key=lambda s: (s[0], s[1], -s[2], s[3]))]
    rest = [s for s in grid if s not in corners]
    return corners + random.Random(0).sample(rest, count - len(corners))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--rungs", default="200,800", help="training steps at which BLEU is measured")
    parser.add_argument("--lr", type=float, default=1e-4, help="the students' peak rate (cpu.yaml's lower choice)")
    parser.add_argument("--out", type=Path, default=RESULTS / "rung0_ranking.json")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    space = load_space("cpu")
    settings = settings_from_space(space, model_info("demo").layers)
    fixed = [d for d in space.dimensions if d.name.startswith("distill.") and d.kind == "fixed"]
    distill = {**{d.name.split(".")[1]: d.values[0] for d in fixed}, "lr": args.lr}
    rungs = [0, *(int(r) for r in args.rungs.split(","))]
    loaded, dev = load_model("demo"), load_demo("dev")
    found: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"rows": {}}
    states = Path(tempfile.mkdtemp(prefix="rung0-states-"))
    for structure in structures(settings, args.count):
        key = str(structure)
        if key in found["rows"] and all(str(r) in found["rows"][key]["bleu"] for r in rungs):
            continue
        row: dict[str, Any] = {"structure": structure, "bleu": {}, "seconds": {}}
        for steps in rungs:
            ctx = TeacherContext(loaded.model, loaded.tokenizer, load_demo("train"), ArtifactCache(), task=loaded.task)
            ctx.elastic = lambda ctx=ctx: ctx.elastic_student(settings)
            training = recipe(structure, "elastic", steps, distill)
            metrics: dict = {}
            started = time.perf_counter()
            student = build_student(training, ctx, metrics, *training_states(states, training))
            row["seconds"][str(steps)] = round(time.perf_counter() - started, 1)
            row["bleu"][str(steps)], found["bleu_signature"] = dev_bleu(student, loaded.tokenizer, dev)
            row["parameters"] = metrics.get("parameters")
            print(f"{key} {steps:5d} steps: dev BLEU {row['bleu'][str(steps)]:6.2f}", flush=True)
        found["rows"][key] = row
        found.update(
            rungs=rungs, distill=distill, torch=torch.__version__, machine=platform.processor() or platform.machine()
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, indent=2))
    write_table(found, args.out.with_suffix(".md"))


def write_table(found: dict[str, Any], path: Path) -> None:
    from scipy.stats import kendalltau

    rungs = found["rungs"]
    rows = [r for r in found["rows"].values() if all(str(s) in r["bleu"] for s in rungs)]
    bleu = {s: [r["bleu"][str(s)] for r in rows] for s in rungs}
    quarter = max(1, len(rows) // 4)

    def best(s: int) -> set[int]:
        return set(sorted(range(len(rows)), key=lambda i: -bleu[s][i])[:quarter])

    lines = [
        "# The free first rung: how well untrained slices rank students",
        "",
        f"{len(rows)} structures sliced from the demo's elastic student, dev greedy BLEU untrained and after "
        f"{', '.join(str(s) for s in rungs[1:])} steps ({found['distill']}; {found.get('bleu_signature', '')}). "
        "Rankings compared with Kendall's τ-b (scipy); 'best quarter' counts how many of the best quarter at the "
        "later rung the earlier rung's best quarter holds.",
        "",
        "| rungs compared | Kendall τ | p | best quarter kept |",
        "|---|---:|---:|---:|",
    ]
    for a, b in itertools.combinations(rungs, 2):
        tau = kendalltau(bleu[a], bleu[b])
        lines.append(
            f"| {a} vs {b} steps | {tau.statistic:.2f} | {tau.pvalue:.3g} | {len(best(a) & best(b))}/{quarter} |"
        )
    lines += ["", "| structure (enc, dec, heads removed, FFN kept) | parameters | "
              + " | ".join(f"{s} steps" for s in rungs) + " |", "|---|---:|" + "---:|" * len(rungs)]  # fmt: skip
    for r in sorted(rows, key=lambda r: -r["bleu"][str(rungs[-1])]):
        cells = " | ".join(f"{r['bleu'][str(s)]:.2f}" for s in rungs)
        lines.append(f"| {tuple(r['structure'])} | {r.get('parameters') or ''} | {cells} |")
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
