"""What newcomers add is one file each: a runtime (runtime/registry.py) and an objective (evaluate/objectives.py),
registered and then carried through the space, the worker, the artifact and the tables, as the toy pass is
(tests/test_space.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from autocompress import plugins
from autocompress.data import load_demo
from autocompress.engine.worker import TrialJob, TrialOutcome, run_trial
from autocompress.errors import UserInputError
from autocompress.evaluate.objectives import objectives, parse_objectives, unregister_evaluator
from autocompress.manifest import Manifest
from autocompress.report.recipe_text import describe
from autocompress.runtime.registry import unregister_runtime
from autocompress.space import load_space, suggest_recipe

TARGET = "target: {device: cpu, threads: 1, batch_sizes: [1], max_length: 8, latency_sentences: 2, repeats: 1}\n"


# Each toy is one new file, as a user's plugin is: named in AUTOCOMPRESS_PLUGINS, it is imported by every process
# that reads the registries (this one, and the memory probe's subprocess).
TOY_RUNTIME = """
import shutil

from autocompress.manifest import update_manifest
from autocompress.runtime.registry import Runtime, register_runtime


def build(request):
    # the student's fp32 ONNX export as it is, under the toy runtime's name
    shutil.copytree(request.onnx_fp32(), request.out)
    update_manifest(request.out, runtime="toy_ort", precision=dict(request.precision))


def open_artifact(directory, threads, providers):
    from autocompress.runtime.onnx_loop import OnnxSeq2Seq

    return OnnxSeq2Seq(directory, threads=threads, providers=providers)


register_runtime(Runtime("toy_ort", "toy", {"fp32": ("cpu",)}, build, open_artifact))
"""
TOY_OBJECTIVE = """
from autocompress.evaluate import Measurement
from autocompress.evaluate.objectives import MINIMIZE, Evaluator, Measure, register_evaluator

FILES = Measure("files", "files in the artifact", "", MINIMIZE, objective="files")


def count(inputs):
    files = sum(1 for path in inputs.artifact.rglob("*") if path.is_file())
    return {"files": Measurement("files", files, "", "files:all")}


register_evaluator(Evaluator("files", lambda _: (FILES,), count, after_cut=True, background=False))
"""


def _plugin(name: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'plugins'}:{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv(plugins.ENV, name)
    plugins.load()
    yield
    sys.modules.pop(name, None)
    plugins._loaded.discard(name)


@pytest.fixture
def toy_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from _plugin("toy_runtime", TOY_RUNTIME, tmp_path, monkeypatch)
    unregister_runtime("toy_ort")


@pytest.fixture
def toy_objective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from _plugin("toy_objective", TOY_OBJECTIVE, tmp_path, monkeypatch)
    unregister_evaluator("files")


def _trial(tmp_path: Path, model: Path, passes: str) -> tuple[TrialOutcome, Any]:
    (tmp_path / "space.yaml").write_text(TARGET + passes)
    space = load_space(tmp_path / "space.yaml")
    recipe = suggest_recipe(optuna.create_study().ask(), space, {"encoder": 2, "decoder": 2}, "cpu", "marian")
    dev = load_demo("dev").head(6)
    (tmp_path / "dev.tsv").write_text("".join(f"{s}\t{r}\n" for s, r in zip(dev.sources, dev.references, strict=True)))
    threads = torch.get_num_threads()
    try:
        job = TrialJob(0, recipe.to_dict(), str(model), str(tmp_path / "dev.tsv"), str(tmp_path / "dev.tsv"), None,
                       space.target, str(tmp_path / "study"), threads=1)  # fmt: skip
        return run_trial(job), recipe
    finally:
        torch.set_num_threads(threads)


def test_a_new_runtime_is_offered_built_measured_and_named(
    toy_runtime: None, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    outcome, recipe = _trial(tmp_path, tiny_models["marian"], "passes:\n  precision: {runtime: toy_ort, dtype: fp32}\n")
    assert recipe.get("precision")["runtime"] == "toy_ort"
    assert Manifest.read(Path(outcome.artifact)).runtime == "toy_ort"
    assert {"bleu", "latency_p50_ms", "peak_rss_mb", "size_mb"} <= set(outcome.values)
    assert "toy fp32" in describe(recipe.to_dict())


def test_a_runtime_not_registered_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(TARGET + "passes:\n  precision: {runtime: toy_ort, dtype: fp32}\n")
    with pytest.raises(UserInputError, match="toy_ort"):
        load_space(tmp_path / "space.yaml")


def test_a_new_objective_is_measured_optimised_and_named(
    toy_objective: None, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    assert parse_objectives("bleu,files") == ("bleu", "files")
    assert [m.key for m in objectives(("bleu", "files"), [1])] == ["bleu", "files"]
    outcome, _ = _trial(tmp_path, tiny_models["marian"], "passes:\n  precision: {dtype: fp32}\n")
    assert outcome.values["files"] == sum(1 for p in Path(outcome.artifact).rglob("*") if p.is_file())
    assert outcome.measurements["files"]["signature"] == "files:all"


def test_an_objective_not_registered_is_refused() -> None:
    with pytest.raises(UserInputError, match="objective 'files' is unknown"):
        parse_objectives("bleu,files")
