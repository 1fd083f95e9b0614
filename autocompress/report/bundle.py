"""A trial bundled for deployment (`autocompress export`, and the search's best/): its artifact directory plus
recipe.json, metrics.json and a model card."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from autocompress.engine.view import RETIMED_NOTE, StudyView, comparison
from autocompress.errors import UserInputError
from autocompress.manifest import is_artifact
from autocompress.report.card import model_card


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| measure | teacher | model | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r['measure']} | {r['teacher']:g} | {r['model']:g} | {r['change']} |" for r in rows]
    return "\n".join(lines) + (f"\n\n{RETIMED_NOTE}" if any(r.get("retimed") for r in rows) else "")


def export_trial(
    view: StudyView, trial: FrozenTrial, dest: Path, rule: str | None = None, storage: str | None = None
) -> Path:
    """Copy the trial's artifact to dest with its recipe, metrics and card; `rule` names the selection that chose it,
    `storage` the study's storage URL (the card's provenance)."""
    source = Path(trial.user_attrs.get("artifact", ""))
    if trial.state != optuna.trial.TrialState.COMPLETE or not is_artifact(source):
        raise UserInputError(
            f"trial {trial.number} has no artifact to export ({trial.state.name}, {source}): pick a COMPLETE trial "
            "from `autocompress pareto`"
        )
    staging = dest.with_name(f".{dest.name}.exporting-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_bundle(view, trial, source, staging, rule, storage)
        _swap_in(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _write_bundle(
    view: StudyView, trial: FrozenTrial, source: Path, staging: Path, rule: str | None, storage: str | None
) -> None:
    _copy_tree(source, staging)
    values = trial.user_attrs["values"]
    rows = comparison(view, trial)
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
    card = model_card(view, trial, recipe, markdown_table(rows), rule, storage, staging)
    (staging / "README.md").write_text(card, encoding="utf-8")


def _copy_tree(source: Path, dest: Path) -> None:
    """shutil.copytree, except that the first error (a full disk) is raised as the OSError it is, not a list."""
    dest.mkdir()
    for path in sorted(source.rglob("*")):
        target = dest / path.relative_to(source)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            shutil.copy2(path, target)


def _swap_in(staging: Path, dest: Path) -> None:
    """Replace dest by the finished staging directory with renames only: dest is whole before and after."""
    if not dest.exists():
        staging.replace(dest)
        return
    old = dest.with_name(f".{dest.name}.replaced-{os.getpid()}")
    dest.replace(old)
    staging.replace(dest)
    shutil.rmtree(old, ignore_errors=True)


def check_export_target(dest: Path, study_dir: Path, force: bool) -> None:
    """`export --to`: a new or empty directory; a non-empty one only with --force; never the study's own files."""
    from autocompress.inputs import check_output_dir

    check_output_dir(dest, "--to")
    target, study = dest.resolve(), study_dir.resolve()
    if target == study or study.is_relative_to(target) or (target / "study.db").exists():
        raise UserInputError(f"--to {dest} holds the study itself: give a new directory, e.g. {study / 'exported'}")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise UserInputError(f"--to {dest} is not empty: give a new or empty directory, or add --force to replace it")
