"""Search efficiency: hypervolume against trials for every sampler the search offers (default among them), 3 seeds.

Every sampler runs the search engine's own sampler settings (autocompress.engine.study.make_sampler) over one space
through the engine's define-by-run suggestion (autocompress.space.suggest_recipe), one trial after another, for
--trials trials. A recipe is measured once by the engine's worker (autocompress.engine.worker.run_trial: student,
artifact, BLEU, latency, peak RSS) and its values are shared by every study that suggests it again, so the samplers
are compared on the same measurements and the machine's noise cannot favour one. Objectives: the search's defaults
(BLEU ↑, p50 latency ↓, peak RSS ↓), no constraint.

The cheaper setting (60 full trials of cpu.yaml take hours on 2 cores): the space of quick.yaml with 20 fine-tuning
steps of 500 tokens per student instead of 60 distillation steps, 100 dev sentences, latency over 8 sentences
(warm-up 1, 3 repeats). Hypervolume: each objective scaled to [0, 1] between the best and worst value measured by any
study, reference point 1.1 in each; computed with Optuna's hypervolume.

Goal: the default sampler reaches random search's 60-trial hypervolume (median over seeds) within 30 trials.
Writes results/benchmarks/search_efficiency.{md,csv,png} and search_efficiency_measurements.json; the measurements
are kept in --workdir as they come, so a run cut off resumes where it stopped (delete it to measure afresh).

    python benchmarks/search_efficiency.py [--samplers tpe,nsga2,gp,random] [--seeds 0,1,2] [--trials 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import optuna

from autocompress.engine.baseline import baseline_recipe
from autocompress.engine.model_info import model_info
from autocompress.engine.study import DEFAULT_SAMPLER, SAMPLERS, make_sampler
from autocompress.engine.worker import TrialJob, run_trial
from autocompress.evaluate.objectives import DEFAULT_OBJECTIVES, objectives
from autocompress.space import load_space, suggest_recipe

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"
SPACE = """
description: quick.yaml, cheaper — the search-efficiency benchmark's space (benchmarks/search_efficiency.py)
target: {device: cpu, threads: 1, batch_sizes: [1], beam: 1, max_length: 128, latency_sentences: 8, warmup: 1,
         repeats: 3}
evaluation: {dev_sentences: 100}
student: {choice: [teacher, pruned]}
passes:
  precision:
    runtime: {choice: [onnxruntime, ctranslate2]}
    dtype: {choice: [fp32, int8, int4, int16]}
    per_channel: {choice: [false, true]}
  layers:
    encoder_layers: {int: [1, teacher]}
    decoder_layers: {int: [1, teacher]}
    strategy: importance
  heads:
    fraction: {float: [0.0, 0.75], step: 0.25}
  ffn:
    keep: {float: [0.25, 1.0], step: 0.25}
  distill: {method: finetune, steps: 20, max_tokens: 500, lr: 0.001}
"""
KEYS = [o.key for o in objectives(DEFAULT_OBJECTIVES, [1])]
DIRECTIONS = [o.direction for o in objectives(DEFAULT_OBJECTIVES, [1])]
CHECKPOINTS = (10, 20, 30, 40, 60)


@dataclass
class Run:
    sampler: str
    seed: int
    study: optuna.Study
    waiting: tuple[optuna.Trial, str] | None = None  # the trial asked and the recipe it waits for
    recipes: list[str] = field(default_factory=list)


class Measurements:
    """Recipe id → measured values (or the failure), kept on disk after each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
        self.reused = len(self.data)  # measured by an earlier run that was cut off, or is being re-reported

    def add(self, recipe_id: str, entry: dict[str, Any]) -> None:
        self.data[recipe_id] = entry
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="the default and random search at least")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="measurements in parallel (each on one core)")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "autocompress" / "bench-efficiency")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    space_file = args.workdir / "space.yaml"
    space_file.write_text(SPACE)
    space, info = load_space(space_file), model_info("demo")
    measurements = Measurements(args.workdir / "measurements.json")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = [
        Run(name, seed, optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(name, seed)))
        for name in args.samplers.split(",")
        for seed in map(int, args.seeds.split(","))
    ]
    started = time.time()

    def job(number: int, recipe: dict[str, Any]) -> TrialJob:
        return TrialJob(
            number,
            recipe,
            "demo",
            "demo:train",
            "demo:dev",
            space.evaluation["dev_sentences"],
            space.target,
            str(args.workdir),
            threads=1,
        )

    context = multiprocessing.get_context("spawn")  # the parent holds Optuna and torch imports: no fork
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        in_flight: dict[Future, str] = {}
        recipes: dict[str, dict[str, Any]] = {}
        baseline = baseline_recipe(0)
        if baseline.id not in measurements.data:
            recipes[baseline.id] = baseline.to_dict()
            in_flight[pool.submit(run_trial, job(-1, baseline.to_dict()))] = baseline.id

        def advance(run: Run) -> None:
            """Ask and tell until the run waits for a measurement or has all its trials."""
            while run.waiting is None and len(run.study.trials) < args.trials:
                trial = run.study.ask()
                # Recipe seed 0 in every study: the sampler's seed varies, the training does not.
                recipe = suggest_recipe(trial, space, info.layers, "cpu", info.family, seed=0)
                run.recipes.append(recipe.id)
                recipes[recipe.id] = recipe.to_dict()
                if recipe.id in measurements.data:
                    tell(run, trial, measurements.data[recipe.id])
                    continue
                run.waiting = (trial, recipe.id)
                if recipe.id not in in_flight.values():
                    in_flight[pool.submit(run_trial, job(len(recipes), recipe.to_dict()))] = recipe.id

        for run in runs:
            advance(run)
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                recipe_id = in_flight.pop(future)
                measurements.add(recipe_id, entry(future, recipes[recipe_id]))
                print(
                    f"[{time.time() - started:6.0f} s] {len(measurements.data)} measured: "
                    f"{describe(measurements.data[recipe_id])}",
                    flush=True,
                )
                for run in runs:
                    if run.waiting is not None and run.waiting[1] == recipe_id:
                        trial, run.waiting = run.waiting[0], None
                        tell(run, trial, measurements.data[recipe_id])
                        advance(run)
    report(runs, measurements, args, time.time() - started)


def entry(future: Future, recipe: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome = future.result()
    except Exception as err:  # a failed measurement is the trial's outcome, as in a search
        return {"recipe": recipe, "error": f"{type(err).__name__}: {err}"}
    return {"recipe": recipe, "values": outcome.values, "phases": outcome.phases}


def tell(run: Run, trial: optuna.Trial, measured: dict[str, Any]) -> None:
    if "error" in measured:
        run.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        run.study.tell(trial, [measured["values"][key] for key in KEYS])


def describe(measured: dict[str, Any]) -> str:
    if "error" in measured:
        return "failed: " + measured["error"]
    v = measured["values"]
    seconds = measured["phases"]["total"]
    return f"BLEU {v['bleu']:.2f}, {v['latency_p50_ms']:.2f} ms, {v['peak_rss_mb']:.0f} MiB in {seconds:.0f} s"


def hypervolume_curves(runs: list[Run], measurements: Measurements) -> dict[tuple[str, int], list[float]]:
    """Hypervolume of the first n trials of each run, n = 1..trials, objectives scaled by every value measured."""
    from optuna._hypervolume import compute_hypervolume  # Optuna's own (WFG); the public API only plots it

    measured = [m["values"] for m in measurements.data.values() if "values" in m]
    losses = np.array([_loss([v[k] for k in KEYS]) for v in measured])
    best, worst = losses.min(axis=0), losses.max(axis=0)
    reference = np.full(len(KEYS), 1.1)
    curves = {}
    for run in runs:
        points, curve = [], []
        for trial in run.study.trials:
            if trial.state == optuna.trial.TrialState.COMPLETE:
                points.append((np.array(_loss(trial.values)) - best) / (worst - best))
            curve.append(compute_hypervolume(np.array(points), reference) if points else 0.0)
        curves[(run.sampler, run.seed)] = curve
    return curves


def _loss(values: list[float]) -> list[float]:
    """Every objective as one to minimise."""
    return [v if d == "minimize" else -v for v, d in zip(values, DIRECTIONS, strict=True)]


def report(runs: list[Run], measurements: Measurements, args: argparse.Namespace, seconds: float) -> None:
    import pandas as pd

    curves = hypervolume_curves(runs, measurements)
    rows = [
        {"sampler": s, "seed": seed, "trial": n + 1, "hypervolume": round(hv, 5)}
        for (s, seed), curve in curves.items()
        for n, hv in enumerate(curve)
    ]
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "search_efficiency.csv", index=False)
    median = frame.groupby(["sampler", "trial"])["hypervolume"].median().unstack("sampler")
    target = median["random"].iloc[-1] if "random" in median else float("nan")
    table = []
    for name in median.columns:
        per_seed = frame[frame.sampler == name].pivot(index="trial", columns="seed", values="hypervolume")
        reached = median.index[median[name] >= target]
        table.append(
            {
                "sampler": name + (" (default)" if name == DEFAULT_SAMPLER else ""),
                **{f"HV@{n}": _spread(per_seed, n) for n in CHECKPOINTS if n <= args.trials},
                f"trials to random's HV@{args.trials}": int(reached[0]) if len(reached) else f">{args.trials}",
                "distinct recipes": round(np.mean([len(set(r.recipes)) for r in runs if r.sampler == name]), 1),
            }
        )
    table_md = pd.DataFrame(table).to_markdown(index=False)
    default_30 = median[DEFAULT_SAMPLER].get(30, float("nan")) if DEFAULT_SAMPLER in median else float("nan")
    verdict = (
        f"Goal: {DEFAULT_SAMPLER} (default) at 30 trials {default_30:.4f} against random at {args.trials} "
        f"{target:.4f} (medians over seeds): {'met' if default_30 >= target else 'missed'} "
        f"({(default_30 / target - 1) * 100:+.1f} %)."
    )
    cost = [m["phases"]["total"] for m in measurements.data.values() if "phases" in m]
    setting = (
        f"{len(runs)} studies ({args.samplers} × seeds {args.seeds}), {args.trials} trials each; "
        f"{len(measurements.data)} distinct recipes measured (median {np.median(cost):.1f} s each, "
        f"{args.workers} in parallel; {measurements.reused} of them taken from {args.workdir} by this run); "
        f"wall time {seconds / 60:.1f} min on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, Optuna {optuna.__version__})."
    )
    text = "\n\n".join(
        [
            "# Search efficiency: hypervolume against trials",
            "Median over seeds (min–max in brackets) of the normalised hypervolume of BLEU ↑, p50 latency ↓ and peak "
            "RSS ↓ after n trials. Command: `python benchmarks/search_efficiency.py`.",
            table_md,
            verdict,
            setting,
            "![hypervolume](search_efficiency.png)",
        ]
    )
    (args.out / "search_efficiency.md").write_text(text + "\n")
    (args.out / "search_efficiency_measurements.json").write_text(json.dumps(measurements.data, indent=1))
    plot(frame, args.out / "search_efficiency.png", target)
    print(table_md, verdict, setting, sep="\n\n")


def _spread(per_seed: Any, n: int) -> str:
    values = per_seed.loc[n].to_numpy()
    return f"{np.median(values):.4f} [{values.min():.4f}–{values.max():.4f}]"


def plot(frame: Any, path: Path, target: float) -> None:
    """Left: every trial; right: from the end of the samplers' shared random start-up, where they differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, first in zip(axes, (1, 10), strict=True):
        for name, group in frame[frame.trial >= first].groupby("sampler"):
            curves = group.pivot(index="trial", columns="seed", values="hypervolume")
            line = ax.plot(curves.index, curves.median(axis=1), label=f"{name} (median of {curves.shape[1]} seeds)")[0]
            ax.fill_between(curves.index, curves.min(axis=1), curves.max(axis=1), color=line.get_color(), alpha=0.12)
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="random search's final hypervolume")
        ax.axvline(30, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("trials")
    axes[0].set_ylabel("hypervolume (normalised BLEU, latency, peak RSS)")
    axes[1].set_title("from trial 10 (the start-up trials are random for every sampler)", fontsize=9)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
