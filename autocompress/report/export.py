"""A trial exported for deployment: its artifact directory plus recipe.json, metrics.json and a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from autocompress.errors import UserInputError

ROWS = (
    ("bleu", "BLEU", "higher"),
    ("chrf", "chrF", "higher"),
    ("latency_p50_ms", "p50 latency, batch 1 (ms)", "lower"),
    ("latency_p95_ms", "p95 latency, batch 1 (ms)", "lower"),
    ("throughput_b16", "sentences/s, batch 16", "higher"),
    ("peak_rss_mb", "peak RSS (MiB)", "lower"),
    ("size_mb", "size on disk (MiB)", "lower"),
)


def comparison(teacher: dict[str, float], model: dict[str, float]) -> list[dict[str, Any]]:
    """Teacher against model: BLEU/chrF differences, and for the rest the ratio in the better direction."""
    rows = []
    for key, label, better in ROWS:
        a, b = teacher.get(key), model.get(key)
        if a is None or b is None:
            continue
        if key in ("bleu", "chrf"):
            change = f"{b - a:+.2f}"
        elif not a or not b:
            change = "-"
        else:
            gain = a / b if better == "lower" else b / a  # > 1: the model is better than the teacher
            change = f"{gain:.2f}× better" if gain >= 1 else f"{1 / gain:.2f}× worse"
        rows.append({"measure": label, "teacher": a, "model": b, "change": change})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| measure | teacher | model | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r['measure']} | {r['teacher']:g} | {r['model']:g} | {r['change']} |" for r in rows]
    return "\n".join(lines)


def export_trial(study: optuna.Study, trial: FrozenTrial, dest: Path, rule: str | None = None) -> Path:
    source = Path(trial.user_attrs.get("artifact", ""))
    if trial.state != optuna.trial.TrialState.COMPLETE or not (source / "artifact.json").exists():
        raise UserInputError(
            f"trial {trial.number} has no artifact to export ({trial.state.name}, {source}): pick a COMPLETE trial "
            "from `autocompress pareto`"
        )
    staging = dest.with_name(dest.name + ".exporting")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    baseline = study.user_attrs.get("baseline", {})
    values = trial.user_attrs["values"]
    rows = comparison(baseline.get("values", {}), values)
    recipe = {"id": trial.user_attrs["recipe_id"], **trial.user_attrs["recipe"]}
    metrics = {
        "study": study.study_name,
        "trial": trial.number,
        "selected_by": rule,
        "values": values,
        "signatures": trial.user_attrs.get("signatures"),
        "teacher": baseline.get("values"),
        "comparison": rows,
    }
    (staging / "recipe.json").write_text(json.dumps(recipe, indent=2))
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (staging / "README.md").write_text(_card(study, trial, recipe, rows, rule))
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    return dest


def _card(study: optuna.Study, trial: FrozenTrial, recipe: dict[str, Any], rows: list[dict], rule: str | None) -> str:
    settings = study.user_attrs.get("settings", {})
    signatures = trial.user_attrs.get("signatures", {})
    passes = "\n".join(f"- **{p['name']}**: {json.dumps(p['params'])}" for p in recipe["passes"])
    runtime = next((p["params"].get("runtime") for p in recipe["passes"] if p["name"] == "precision"), "onnxruntime")
    return f"""# Compressed model: trial {trial.number} of study `{study.study_name}`

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
