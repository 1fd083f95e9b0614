"""A trial bundled for deployment (`autocompress export`, and the search's best/): its artifact directory plus
recipe.json, metrics.json and a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from autocompress.errors import UserInputError
from autocompress.export.manifest import is_artifact
from autocompress.report.view import StudyView, comparison


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| measure | teacher | model | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r['measure']} | {r['teacher']:g} | {r['model']:g} | {r['change']} |" for r in rows]
    return "\n".join(lines)


def export_trial(view: StudyView, trial: FrozenTrial, dest: Path, rule: str | None = None) -> Path:
    """Copy the trial's artifact to dest with its recipe, metrics and card; `rule` names the selection that chose it."""
    source = Path(trial.user_attrs.get("artifact", ""))
    if trial.state != optuna.trial.TrialState.COMPLETE or not is_artifact(source):
        raise UserInputError(
            f"trial {trial.number} has no artifact to export ({trial.state.name}, {source}): pick a COMPLETE trial "
            "from `autocompress pareto`"
        )
    staging = dest.with_name(dest.name + ".exporting")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    values = trial.user_attrs["values"]
    rows = comparison(view, values)
    recipe = {"id": trial.user_attrs["recipe_id"], **trial.user_attrs["recipe"]}
    metrics = {
        "study": view.name,
        "trial": trial.number,
        "selected_by": rule,
        "values": values,
        "signatures": trial.user_attrs.get("signatures"),
        "teacher": view.baseline.get("values"),
        "comparison": rows,
    }
    (staging / "recipe.json").write_text(json.dumps(recipe, indent=2))
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (staging / "README.md").write_text(_card(view, trial, recipe, rows, rule))
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    return dest


def _card(view: StudyView, trial: FrozenTrial, recipe: dict[str, Any], rows: list[dict], rule: str | None) -> str:
    settings = view.settings
    signatures = trial.user_attrs.get("signatures", {})
    passes = "\n".join(f"- **{p['name']}**: {json.dumps(p['params'])}" for p in recipe["passes"])
    runtime = next((p["params"].get("runtime") for p in recipe["passes"] if p["name"] == "precision"), "onnxruntime")
    return f"""# Compressed model: trial {trial.number} of study `{view.name}`

Made by autocompress from teacher `{settings.get("model", "?")}`{f", selected as the {rule} model" if rule else ""}
under the constraints of the study (max BLEU drop {settings.get("max_bleu_drop")}). Runtime: {runtime}.

## Against the teacher (both measured in the same harness: exported artifact, same target)

{markdown_table(rows)}

## Recipe `{recipe["id"]}`

{passes}

## How it was measured

- BLEU: `{signatures.get("bleu", "")}`
- latency: `{signatures.get("latency_p50_ms", "")}`
- memory: `{signatures.get("peak_rss_mb", "")}`

## Use it

ONNX artifacts: `examples/minimal_onnx_translate.py <this directory>` (onnxruntime and a tokenizer, nothing else).
CTranslate2 artifacts: `ctranslate2.Translator(<this directory>)` with the tokenizer saved here.
"""
