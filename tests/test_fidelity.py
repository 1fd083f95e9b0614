"""Multi-fidelity training that carries over: a student continued from its state at a lower rung is the student a
longer run would have made."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.model.importance import ImportanceSettings
from autocompress.passes.build import build_student
from autocompress.passes.distill import TrainingState, learning_rate, stable_steps
from autocompress.passes.recipe import PassConfig, Recipe
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.translations import TranslationSettings


def _recipe(steps: int) -> Recipe:
    distill = {"method": "sequence", "steps": steps, "schedule": "wsd", "warmup_steps": 8, "max_tokens": 300}
    return Recipe.make([("layers", {"decoder_layers": 1}), ("sparsity", {"target": 0.3}), ("distill", distill)])


def test_wsd_schedule_warms_up_holds_and_cools_down() -> None:
    config = PassConfig.make("distill", {"steps": 100, "schedule": "wsd", "warmup_steps": 10, "cooldown": 0.2})
    assert stable_steps(config) == 80
    rates = [learning_rate(config, s) for s in range(100)]
    assert rates[0] == 0.1 and rates[9] == 1.0 and rates[79] == 1.0
    assert rates[80] > rates[90] > rates[99] > 0.0


def test_a_continued_student_equals_one_trained_longer(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    teacher = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["marian"])
    states: dict[int, TrainingState] = {}

    def context() -> TeacherContext:
        return TeacherContext(
            teacher,
            tokenizer,
            load_demo("dev").head(48),
            ArtifactCache(tmp_path / "cache"),
            translation_settings=TranslationSettings(runtime="pytorch", max_length=24),
            importance_settings=ImportanceSettings(sentences=24, max_tokens=400, max_length=48),
        )

    def keep(state: TrainingState) -> None:
        states.setdefault(state.step, state)

    build_student(_recipe(40), context(), save_state=keep)  # straight to 40 steps: its state before the cool-down
    longer = states.pop(36)  # is at step 36
    build_student(_recipe(20), context(), save_state=keep)  # a lower rung: its state at step 18 ...
    metrics: dict = {}
    student = build_student(_recipe(40), context(), metrics, states.pop(18), keep)  # ... continued to 40 steps
    assert metrics["distill"]["resumed_from"] == 18
    continued = states[36]
    for name, value in longer.model.items():
        torch.testing.assert_close(continued.model[name], value, msg=name)
    assert all(torch.equal(a, b) for a, b in zip(continued.masks or [], longer.masks or [], strict=True))
    assert sum(int((p == 0).sum()) for p in student.parameters()) > 0  # sparsity carried on
