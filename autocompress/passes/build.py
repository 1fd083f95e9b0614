"""A recipe's two stages, run: its model passes on a copy of the teacher (the student), then its artifact passes on
the trained student (the deployed artifact: precision, the runtime and numeric format), put in the layout other tools
load (autocompress.export.layout), built in a staging directory and moved into place whole.
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autocompress.export.layout import standard_layout
from autocompress.manifest import Manifest, update_manifest
from autocompress.measure_lock import background_work
from autocompress.model import arch
from autocompress.model.structure import measured_sparsity
from autocompress.passes import PASSES
from autocompress.passes.base import ArtifactBuild, ArtifactPass, ModelPass
from autocompress.passes.context import StudentBuild
from autocompress.passes.recipe import PassConfig, Recipe

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.passes.distill import TrainingState
    from autocompress.teacher.context import TeacherContext


def build_student(
    recipe: Recipe,
    ctx: TeacherContext,
    metrics: dict[str, Any] | None = None,
    resume: TrainingState | None = None,
    save_state: Callable[[TrainingState], object] | None = None,
) -> PreTrainedModel:
    """Apply the recipe's model passes to a copy of the teacher; the teacher is left as it was. What the passes
    measured goes into `metrics` (with `cache`: each teacher artifact used, built or found); `resume` and `save_state`
    let training continue from a lower fidelity rung's state (passes.distill)."""
    torch.manual_seed(recipe.seed)
    build = StudentBuild(ctx, recipe.seed, None, metrics if metrics is not None else {}, resume, save_state)
    ctx.used = {}
    student = copy.deepcopy(ctx.teacher)
    for stack in arch.STACKS:
        for index, layer in enumerate(arch.layers(student, stack)):
            layer.autocompress_origin = index  # passes look up teacher-layer scores through this
    for config in recipe.passes:
        chosen = PASSES[config.name]
        if isinstance(chosen, ModelPass):  # artifact passes apply to the export (build_artifact)
            chosen.apply(student, config, build)
    if build.sparsifier is not None:
        build.sparsifier.finish()  # reached on schedule during training, or at once when nothing trains
    build.metrics["sparsity"] = round(measured_sparsity(student), 5)
    build.metrics["parameters"] = sum(p.numel() for p in student.parameters())
    if ctx.used:
        build.metrics["cache"] = dict(ctx.used)
    return student.eval()


def artifact_passes(recipe: Recipe) -> list[PassConfig]:
    """The recipe's artifact-stage passes; a recipe without one gets the default precision (fp32 onnxruntime)."""
    found = [config for config in recipe.passes if isinstance(PASSES[config.name], ArtifactPass)]
    return found or [PassConfig.make("precision")]


def precision_of(recipe: Recipe) -> PassConfig:
    return recipe.get("precision") or PassConfig.make("precision")


def build_artifact(
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    recipe: Recipe,
    out_dir: Path,
    onnx_fp32: Callable[[], Path],
    calibration: Sequence[str] = (),
    metrics: dict[str, Any] | None = None,
    ctx: TeacherContext | None = None,
    device: str = "cpu",
) -> Path:
    """Write the artifact to out_dir (replaced if present). onnx_fp32() gives the student's fp32 ONNX export, which
    onnxruntime artifacts start from (made on first call: CTranslate2 artifacts never need it). ctx, the teacher's
    pass context, is given to the artifact passes that read teacher artifacts (the shortlist). Building pauses while a
    measurement runs on `device`, the target's."""
    # Per process: two searches on one study (or a retried Ray task beside a stale one) never share a staging area.
    staging = out_dir.with_name(f"{out_dir.name}.building-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    build = ArtifactBuild(student, tokenizer, recipe, staging, onnx_fp32, calibration, ctx)
    with background_work(device):
        for config in artifact_passes(recipe):
            chosen = PASSES[config.name]
            assert isinstance(chosen, ArtifactPass)
            chosen.apply(build, config)
        standard_layout(staging)
        _record(staging, recipe, metrics)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    return out_dir


def _record(directory: Path, recipe: Recipe, metrics: dict[str, Any] | None) -> None:
    """The artifact describes itself: its recipe (with id), its precision and what building it measured."""
    precision = {**Manifest.read(directory).precision, **precision_of(recipe).as_dict()}
    update_manifest(directory, recipe=recipe.to_dict(), recipe_id=recipe.id, metrics=metrics or {}, precision=precision)
