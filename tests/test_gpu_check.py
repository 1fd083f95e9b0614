"""The device check (benchmarks/gpu_check.py) is ready for a machine with a GPU: its dry run prints the plan and the
install commands on CPU, and its space's start recipes — every CUDA path — are recipes the passes accept for a CUDA
target, drawn first and as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

from autocompress.passes.recipe import Recipe
from autocompress.space import load_space, start_params, suggest_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_the_dry_run_prints_the_plan_and_the_install_commands() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pinned = next(
        line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("onnxruntime==")
    )
    assert "pip install -q torch==2.13.0" in done.stdout and f"onnxruntime-gpu=={pinned.split('==')[1]}" in done.stdout
    for step in ("environment", "tests marked cuda", "every precision path", "two workers on one GPU"):
        assert step in done.stdout, step
    assert "--gpus-per-trial 0.5" in done.stdout and not (ROOT / "results" / "gpu" / "check.json").exists()


def test_every_cuda_path_is_a_valid_start_recipe() -> None:
    space = load_space(str(ROOT / "benchmarks" / "spaces" / "gpu_check.yaml"))
    layers = {"encoder": 4, "decoder": 3}
    starts = start_params(space, layers)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for params in starts:
        study.enqueue_trial(params)
    drawn = []
    for params in starts:
        trial = study.ask()
        recipe = suggest_recipe(trial, space, layers, "cuda", "marian")
        assert {k: trial.params.get(k) for k in params} == params
        precision = recipe.get("precision")
        drawn.append((recipe.get("layers") is not None, precision["runtime"], precision["dtype"]))
        assert Recipe.from_dict(recipe.to_dict()) == recipe
        study.tell(trial, 0.0)
    assert set(drawn) == {
        (False, "onnxruntime", "fp32"), (False, "onnxruntime", "fp16"), (False, "onnxruntime", "int4"),
        (False, "ctranslate2", "fp16"), (False, "ctranslate2", "bf16"), (False, "ctranslate2", "int8"),
        (True, "onnxruntime", "fp16"), (True, "ctranslate2", "fp16"),
    }  # fmt: skip
