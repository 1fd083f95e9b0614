"""The deployed artifact of a recipe: the student handed to the recipe's artifact passes (precision: the runtime and
numeric format), put in the layout other tools load (autocompress.export.layout), built in a staging directory and
moved into place whole.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.evaluate.measure_lock import background_work
from autocompress.export.layout import standard_layout
from autocompress.export.manifest import Manifest, update_manifest
from autocompress.passes import PASSES
from autocompress.passes.base import ArtifactBuild
from autocompress.recipe import PassConfig, Recipe

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.passes.context import PassContext


def artifact_passes(recipe: Recipe) -> list[PassConfig]:
    """The recipe's artifact-stage passes; a recipe without one gets the default precision (fp32 onnxruntime)."""
    found = [config for config in recipe.passes if PASSES[config.name].stage == "artifact"]
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
    ctx: PassContext | None = None,
    device: str = "cpu",
) -> Path:
    """Write the artifact to out_dir (replaced if present). onnx_fp32() gives the student's fp32 ONNX export, which
    onnxruntime artifacts start from (made on first call: CTranslate2 artifacts never need it). ctx, the teacher's
    pass context, is given to the artifact passes that read teacher artifacts (the shortlist). Building pauses while a
    measurement runs on `device`, the target's."""
    # Per process: two searches on one study (or a retried Ray task beside a stale one) never share a staging area.
    staging = out_dir.with_name(f"{out_dir.name}.building-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    build = ArtifactBuild(student, tokenizer, recipe, staging, onnx_fp32, calibration)
    with background_work(device):
        for config in artifact_passes(recipe):
            PASSES[config.name].apply(build, config, ctx)
        standard_layout(staging)
        _record(staging, recipe, metrics)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    return out_dir


def _record(directory: Path, recipe: Recipe, metrics: dict[str, Any] | None) -> None:
    """The artifact describes itself: its recipe (with id), its precision and what building it measured."""
    precision = {**Manifest.read(directory).precision, **precision_of(recipe).as_dict()}
    update_manifest(directory, recipe=recipe.to_dict(), recipe_id=recipe.id, metrics=metrics or {}, precision=precision)
