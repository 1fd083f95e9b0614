"""The deployed artifact of a recipe: its student exported for the recipe's runtime at the recipe's precision.

onnxruntime: the student's fp32 ONNX export (cached once per student by the worker) then the precision pass.
CTranslate2: one conversion at the CTranslate2 quantization that matches the dtype.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.evaluate.measure_lock import background_work
from autocompress.passes.precision import CT2_QUANTIZATION, apply_artifact
from autocompress.recipe import PassConfig, Recipe

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.data import ParallelCorpus

CALIBRATION_SENTENCES = 64


def precision_of(recipe: Recipe) -> PassConfig:
    return recipe.get("precision") or PassConfig.make("precision")


def build_artifact(
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    recipe: Recipe,
    out_dir: Path,
    fp32_dir: Path | None,
    calibration: ParallelCorpus,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write the artifact to out_dir (replaced if present); fp32_dir holds the student's fp32 ONNX (onnxruntime)."""
    from autocompress.export.ctranslate2 import export_ctranslate2

    config = precision_of(recipe)
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    with background_work():
        if config["runtime"] == "ctranslate2":
            quantization = CT2_QUANTIZATION[config["dtype"]]
            export_ctranslate2(student, tokenizer, staging, quantization=quantization, task=recipe.task)
        else:
            assert fp32_dir is not None, "onnxruntime artifacts start from the student's fp32 export"
            readers = None
            if config["dtype"] == "int8_static":
                from autocompress.runtime.calibration import calibration_readers

                readers = calibration_readers(fp32_dir, list(calibration.sources[:CALIBRATION_SENTENCES]))
            apply_artifact(fp32_dir, staging, config, readers)
        _record(staging, recipe, metrics)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    return out_dir


def _record(directory: Path, recipe: Recipe, metrics: dict[str, Any] | None) -> None:
    """The artifact describes itself: its recipe (with id) and what building it measured."""
    spec_file = directory / "artifact.json"
    spec = json.loads(spec_file.read_text())
    spec["recipe"], spec["recipe_id"] = recipe.to_dict(), recipe.id
    spec["metrics"] = metrics or {}
    spec_file.write_text(json.dumps(spec, indent=2))
