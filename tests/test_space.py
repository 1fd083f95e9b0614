"""The pass contract, seen from the search space: each pass owns its rules, and a new pass is one file of its own.

The toy pass below is defined and registered in this test alone; the recipe, the search space, the student builder,
the worker and the artifact take it without any other module knowing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from autocompress.errors import UserInputError
from autocompress.passes import PASSES, register, unregister
from autocompress.passes.base import ModelPass, Param
from autocompress.passes.recipe import Recipe
from autocompress.space import load_space, start_params, suggest_recipe

LAYERS = {"encoder": 2, "decoder": 2}
TARGET = "target: {device: cpu, threads: 1, batch_sizes: [1], max_length: 8, latency_sentences: 2, repeats: 1}\n"


class ScaleEmbeddings(ModelPass):
    """Multiplies the input embeddings by 1 + `amount`: a change anyone can see in the weights and the logits."""

    name = "toy_scale"
    stage = "structure"
    params = (Param("amount", "float", 0.0, "relative change of the embeddings", low=-0.5, high=0.5),)

    def apply(self, student: Any, config: Any, build: Any) -> None:
        with torch.no_grad():
            student.get_input_embeddings().weight.mul_(1 + config["amount"])
        build.metrics[self.name] = {"amount": config["amount"]}


@pytest.fixture
def toy_pass() -> Any:
    register(ScaleEmbeddings())
    yield PASSES["toy_scale"]
    unregister("toy_scale")


def _recipe(tmp_path: Path, text: str, family: str = "marian", seed: int = 0) -> Recipe:
    (tmp_path / "space.yaml").write_text(TARGET + text)
    space = load_space(tmp_path / "space.yaml")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    return suggest_recipe(trial, space, LAYERS, "cpu", family)


def test_a_new_pass_runs_through_the_space_the_worker_and_the_artifact(
    toy_pass: ModelPass, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    import json

    from autocompress.data import load_demo
    from autocompress.engine.worker import TrialJob, run_trial
    from autocompress.manifest import Manifest

    recipe = _recipe(tmp_path, "passes:\n  toy_scale:\n    amount: {float: [0.2, 0.4]}\n  precision: {dtype: fp32}\n")
    assert [p.name for p in recipe.passes] == ["toy_scale", "precision"]
    assert 0.2 <= recipe.get("toy_scale")["amount"] <= 0.4
    dev = load_demo("dev").head(6)
    (tmp_path / "dev.tsv").write_text("".join(f"{s}\t{r}\n" for s, r in zip(dev.sources, dev.references, strict=True)))
    threads = torch.get_num_threads()
    try:
        outcome = run_trial(
            TrialJob(
                number=0,
                recipe=recipe.to_dict(),
                model=str(tiny_models["marian"]),
                train=str(tmp_path / "dev.tsv"),
                dev=str(tmp_path / "dev.tsv"),
                dev_sentences=None,
                target=load_space(tmp_path / "space.yaml").target,
                study_dir=str(tmp_path / "study"),
                threads=1,
            )
        )
    finally:
        torch.set_num_threads(threads)
    assert outcome.metrics["student"]["toy_scale"] == {"amount": recipe.get("toy_scale")["amount"]}
    manifest = Manifest.read(Path(outcome.artifact))
    assert manifest.recipe_id == recipe.id and [p["name"] for p in manifest.recipe["passes"]] == [
        "toy_scale",
        "precision",
    ]
    assert {"bleu", "latency_p50_ms", "peak_rss_mb", "size_mb"} <= set(manifest.measurements)
    assert json.loads(json.dumps(outcome.values))["bleu"] >= 0


def test_each_pass_owns_its_rules(tmp_path: Path) -> None:
    # CTranslate2 takes one head count per stack: the heads pass allocates uniformly for it (and only for it)
    ct2 = _recipe(tmp_path, "passes:\n  heads: {fraction: 0.5}\n  precision: {runtime: ctranslate2, dtype: int8}\n")
    assert ct2.get("heads")["allocation"] == "uniform"
    ort = _recipe(tmp_path, "passes:\n  heads: {fraction: 0.5}\n  precision: {runtime: onnxruntime, dtype: int8}\n")
    assert ort.get("heads")["allocation"] == "global"
    # a student that is structurally the teacher is not distilled; a changed one is
    same = _recipe(tmp_path, "passes:\n  layers: {decoder_layers: 2}\n  distill: {steps: 50}\n")
    assert [p.name for p in same.passes] == ["precision"]
    changed = _recipe(tmp_path, "passes:\n  layers: {decoder_layers: 1}\n  distill: {steps: 50}\n")
    assert [p.name for p in changed.passes] == ["layers", "distill", "precision"]
    # the runtime a model's family allows (CTranslate2: Marian), the dtypes a runtime runs on the target
    t5 = _recipe(tmp_path, "passes:\n  precision: {runtime: {choice: [onnxruntime, ctranslate2]}}\n", family="t5")
    assert t5.get("precision")["runtime"] == "onnxruntime"
    from autocompress.errors import UserInputError

    with pytest.raises(UserInputError, match="none of which this model and target can run"):
        _recipe(tmp_path, "passes:\n  precision: {runtime: onnxruntime, dtype: {choice: [fp16, bf16]}}\n")


def test_registering_a_pass_of_an_unknown_stage_is_refused() -> None:
    class Nowhere(ScaleEmbeddings):
        name, stage = "nowhere", "deploy"

    with pytest.raises(ValueError, match="stage 'deploy' is not one of"):
        register(Nowhere())
    assert "nowhere" not in PASSES


@pytest.mark.parametrize("name", ["cpu", "cuda", "quick"])
def test_every_packaged_space_loads_and_draws_valid_recipes(name: str) -> None:
    """What the package offers must load, and its trials must be recipes the passes accept (CUDA dtypes included:
    drawing is checked on the space's own device, not on this machine)."""
    from autocompress.teacher.elastic import settings_from_space, uses_elastic

    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    starts = start_params(space, {"encoder": 4, "decoder": 3})
    for params in starts:
        study.enqueue_trial(params)
    for number in range(12):
        trial = study.ask()
        recipe = suggest_recipe(trial, space, {"encoder": 4, "decoder": 3}, space.target["device"], "marian")
        assert Recipe.from_dict(recipe.to_dict()) == recipe
        if number < len(starts):  # the space's start recipes come first, as written
            assert {k: trial.params.get(k) for k in starts[number]} == starts[number]
        study.tell(trial, 0.0)
    if uses_elastic(space):
        settings = settings_from_space(space, {"encoder": 4, "decoder": 3})
        assert settings.largest().decoder_layers == 3 and settings.smallest().decoder_layers == 1


def test_start_recipes_are_checked_and_resolved(tmp_path: Path) -> None:
    """`start:` names the study's parameters; an ordered value becomes its index and `teacher` the layer count, and
    a name or value outside the space is one line naming it."""
    passes = (
        "student: {choice: [teacher, pruned]}\npasses:\n"
        "  layers: {encoder_layers: {int: [1, teacher]}, decoder_layers: {int: [1, teacher]}}\n"
        "  precision: {runtime: {choice: [onnxruntime, ctranslate2]}, dtype: {choice: [fp32, int8]}}\n"
        "  shortlist: {top_k: {ordered: [0, 10, 25]}, frequent: 100}\n"
    )
    (tmp_path / "space.yaml").write_text(
        TARGET + passes + "start:\n  - {student: pruned, layers.encoder_layers: teacher, layers.decoder_layers: 1,"
        " precision.dtype.ctranslate2: int8, shortlist.top_k: 25}\n"
    )
    space = load_space(tmp_path / "space.yaml")
    assert start_params(space, LAYERS) == [
        {
            "student": "pruned",
            "layers.encoder_layers": 2,
            "layers.decoder_layers": 1,
            "precision.dtype.ctranslate2": "int8",
            "shortlist.top_k": 2,
        }
    ]
    for bad, named in [
        ("{layers.decoder_layer: 1}", "layers.decoder_layer"),
        ("{shortlist.top_k: 5}", "shortlist.top_k = 5"),
        ("{student: elastic}", "student 'elastic'"),
        ("{layers.decoder_layers: 0}", "layers.decoder_layers = 0"),
    ]:
        (tmp_path / "bad.yaml").write_text(TARGET + passes + f"start:\n  - {bad}\n")
        with pytest.raises(UserInputError, match=named.replace(".", "\\.")):
            load_space(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    ("rungs", "refused"),
    [("[0, 200, 800]", None), ("[200, 0]", "must be increasing step counts"), ("[-1, 5]", "must be increasing")],
)
def test_rungs_may_start_untrained(tmp_path: Path, rungs: str, refused: str | None) -> None:
    """A first rung of 0 steps measures students as sliced (the free first rung); at_rung gives it 0 steps."""
    from autocompress.space import at_rung

    text = f"fidelity: {{rungs: {rungs}, eta: 2}}\npasses:\n  layers: {{decoder_layers: 1}}\n  distill: {{lr: 0.001}}\n"
    (tmp_path / "space.yaml").write_text(TARGET + text)
    if refused is not None:
        with pytest.raises(UserInputError, match=refused):
            load_space(tmp_path / "space.yaml")
        return
    space = load_space(tmp_path / "space.yaml")
    recipe = _recipe(tmp_path, text)
    assert [at_rung(recipe, space.fidelity, r).get("distill")["steps"] for r in range(3)] == [0, 200, 800]
