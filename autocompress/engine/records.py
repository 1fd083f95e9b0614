"""What the study already holds about a recipe, read the same way by every driver on it: measured, cut short, failed,
being measured by another driver; and the attributes a measurement leaves on its trial."""

from __future__ import annotations

import json
import socket
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.engine.executor import Finished
from autocompress.engine.study import alive, is_measured
from autocompress.passes.recipe import Recipe


def measured(study: optuna.Study, recipe_id: str) -> FrozenTrial | None:
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("recipe_id") == recipe_id and is_measured(t):
            return t
    return None


def cut(study: optuna.Study, recipe_id: str) -> FrozenTrial | None:
    """A trial of this recipe whose timing was cut short (slower than the teacher): its twins take the verdict."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        if t.user_attrs.get("recipe_id") == recipe_id and "cut_short" in t.user_attrs:
            return t
    return None


def failed(study: optuna.Study, recipe_id: str) -> FrozenTrial | None:
    """A trial of this recipe whose worker raised: the same recipe raises again (a timeout, a crash, a cut-off or a
    stop may not, so those are run again)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get("recipe_id") == recipe_id and "traceback" in t.user_attrs:
            return t
    return None


def completed(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if is_measured(t))


def occupied(trials: list[FrozenTrial]) -> int:
    """Measured recipes plus recipes being measured (twins waiting on one another count once)."""
    done = {t.user_attrs.get("recipe_id") for t in trials if is_measured(t)}
    running = {
        t.user_attrs["recipe_id"]
        for t in trials
        if t.state == TrialState.RUNNING and "recipe_id" in t.user_attrs and "duplicate_of" not in t.user_attrs
    }
    return sum(1 for t in trials if is_measured(t)) + len(running - done)


def in_flight(study: optuna.Study) -> int:
    """Recipes being measured now, by this driver or another one on the same study (the budget is the study's)."""
    return occupied(study.get_trials(deepcopy=False)) - completed(study)


def claimed_elsewhere(
    study: optuna.Study, recipe_id: str, number: int, mine: Container[int], waited_on: Container[int]
) -> int | None:
    """An earlier RUNNING trial of another driver (not in `mine`) with the same recipe: the recipe id is set on a
    trial before it is submitted, so of two drivers that drew the same recipe, the later trial sees the earlier and
    waits (unless a trial of this driver already waits on it: `waited_on`)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number < number and t.number not in mine and t.user_attrs.get("recipe_id") == recipe_id:
            if "duplicate_of" not in t.user_attrs and t.number not in waited_on:
                return t.number
    return None


def over_budget(study: optuna.Study, number: int, trials: int | None) -> bool:
    """Whether trials asked before this one (by any driver) already fill a trial budget: two drivers that checked
    the room at the same moment do not both measure the last trial."""
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < number]
    return trials is not None and occupied(earlier) >= trials


def driver_gone(trial: FrozenTrial) -> bool:
    """The trial's driver ran on this machine and its process is gone (another machine's cannot be seen)."""
    driver = trial.user_attrs.get("driver", {})
    return driver.get("host") == socket.gethostname() and not alive(driver.get("pid"))


def reason(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get("fail_reason", "failed"))


def outcome_attrs(recipe: Recipe, finished: Finished) -> dict[str, Any]:
    """A measured trial's user attributes: its recipe, values with their signatures, artifact, phases, metrics."""
    outcome = finished.outcome
    assert outcome is not None
    return {
        "recipe_id": recipe.id,
        "recipe": recipe.to_dict(),
        "values": outcome.values,
        "signatures": {name: m["signature"] for name, m in outcome.measurements.items()},
        "artifact": outcome.artifact,
        "phases": outcome.phases,
        "metrics": json.loads(json.dumps(outcome.metrics, default=str)),
        "worker": outcome.worker,
    }


def describe(values: dict[str, float]) -> str:
    return (
        f"BLEU {values['bleu']:.2f}, chrF {values['chrf']:.2f}, p50 {values['latency_p50_ms']:.2f} ms, "
        f"peak RSS {values['peak_rss_mb']:.0f} MiB, size {values['size_mb']:.1f} MiB"
    )
