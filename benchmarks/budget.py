"""The budget on a teacher no cache has seen: the demo teacher with its weights perturbed (saved with save_pretrained),
an empty artifact cache, `autocompress search --budget 20m` on this machine, as a user runs it.

What it checks (issue 30): the run ends within the budget (and a minute); at least 4 trials are measured, one of
them a structural student; the plan is printed within the first 2 minutes; each phase's estimate (the study's `plan`)
beside what it took (`actuals`). Writes results/benchmarks/budget.md; the run's study and log are kept under
results/benchmarks/budget-runs/, and `--table-only` rebuilds the table from them.

    python benchmarks/budget.py [--budget 20m] [--table-only]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"
RUNS = RESULTS / "budget-runs"
NOISE = ("Warning", "warn(", "torchvision", "cls.__new__")


def perturbed_teacher(directory: Path) -> Path:
    """The demo teacher, every weight multiplied by 1 + 1e-3·N(0, 1) (seed 1): the same model to a user, a new one
    to the cache's content hash."""
    import torch

    from autocompress.model.load import DEMO_MODEL, load_model

    loaded = load_model("demo")
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in loaded.model.parameters():
            parameter.mul_(1 + 1e-3 * torch.randn(parameter.shape, generator=noise))
    loaded.model.save_pretrained(directory)
    loaded.tokenizer.save_pretrained(directory)
    shutil.copy(DEMO_MODEL / "README.md", directory / "README.md")
    return directory


def run(budget: str, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        teacher = perturbed_teacher(Path(tmp) / "teacher")
        env = {**os.environ, "AUTOCOMPRESS_CACHE": str(Path(tmp) / "cache")}
        command = [sys.executable, "-m", "autocompress", "search", "--model", str(teacher), "--budget", budget]
        started = time.monotonic()
        with subprocess.Popen([*command, "--out", str(out)], stderr=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stderr is not None
            lines = [f"{time.monotonic() - started:.0f}s {line.rstrip()}" for line in proc.stderr]
        lines.append(f"{time.monotonic() - started:.0f}s exit {proc.returncode}")
    (out / "search.log").write_text("\n".join(line for line in lines if not any(n in line for n in NOISE)) + "\n")


def table(out: Path, budget: str) -> str:
    import optuna

    from autocompress.engine.plan import plan_rows

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    plan, actuals = study.user_attrs["plan"], study.user_attrs["actuals"]
    log = (out / "search.log").read_text()
    printed = re.search(r"^(\d+)s plan \(", log, re.MULTILINE)
    from autocompress.engine.view import study_view

    measured = study_view(study).measured  # each student once, at its highest rung
    students = [t for t in measured if any(p["name"] == "layers" for p in t.user_attrs["recipe"]["passes"])]
    cut = [t for t in study.trials if "cut_short" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    lines = [
        "# The budget on a teacher no cache has seen",
        "",
        f"`python benchmarks/budget.py --budget {budget}`: the demo teacher with its weights perturbed, an empty "
        f"artifact cache, `autocompress search --budget {budget}`; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores.",
        "",
        f"- whole run: **{actuals['total'] / 60:.1f} min** against a {plan['budget_s'] / 60:g}-min budget",
        f"- the plan printed after **{printed.group(1) if printed else '?'} s**",
        f"- trials measured: **{len(measured)}**, of them structural students: **{len(students)}**; cut short "
        f"(slower than the teacher, BLEU not decoded): {len(cut)}",
        f"- adapted: {plan['adapted'] or 'no'}",
        "",
        "The per-artifact ratios of this run were then multiplied into the plan's estimates of whole builds "
        "(`SUSTAINED` in autocompress/engine/plan.py); the phases' estimates here are the ones this run made.",
        "",
        "| phase | planned s | actual s | actual / planned |",
        "|---|---:|---:|---:|",
    ]
    for row in plan_rows(plan, actuals):
        cells = [row["planned s"], row["actual s"], row["actual / planned"]]
        lines.append(f"| {row['phase']} | " + " | ".join("" if c is None else f"{c:.4g}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--table-only", action="store_true", help="rebuild budget.md from the kept run")
    args = parser.parse_args()
    out = RUNS / "unseen"
    if not args.table_only:
        run(args.budget, out)
    text = table(out, args.budget)
    (RESULTS / "budget.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
