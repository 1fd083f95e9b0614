"""Multi-fidelity: which student goes on to the next rung (asynchronous successive halving), and what a trial at a
rung should take, for the budget's admission."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from autocompress.engine.plan import Plan
from autocompress.engine.study import is_measured, pareto_ranks
from autocompress.space import Fidelity


def promotion(study: optuna.Study, fidelity: Fidelity | None) -> FrozenTrial | None:
    """Of the students measured at a rung, the best 1/eta (by Pareto rank of their objectives, then BLEU) go on to the
    next, as soon as enough have been measured there; the highest rung first."""
    if fidelity is None:
        return None
    trials = study.get_trials(deepcopy=False)
    promoted = {t.user_attrs["parent"] for t in trials if "parent" in t.user_attrs}
    directions = [d.name.lower() for d in study.directions]
    for rung in reversed(range(len(fidelity.rungs) - 1)):
        done = [
            t
            for t in trials
            if is_measured(t) and t.user_attrs.get("rung", 0) == rung and trains(t.user_attrs.get("recipe", {}))
        ]
        waiting = [t for t in done if t.number not in promoted]
        if waiting and len(done) // fidelity.eta > len(done) - len(waiting):
            ranks = pareto_ranks([list(t.values) for t in waiting], directions)
            best = min(zip(ranks, waiting, strict=True), key=lambda r: (r[0], -r[1].user_attrs["values"]["bleu"]))
            return best[1]
    return None


def trains(recipe: dict[str, Any]) -> bool:
    """Whether a recipe distils a student (what multi-fidelity rungs are about)."""
    return any(p["name"] == "distill" for p in recipe.get("passes", []))


def trial_seconds(study: optuna.Study, plan: Plan | None, rung: int) -> float:
    """What a trial at this rung should take: the median of those measured at it, else the plan's estimate."""
    taken = [
        t.user_attrs["phases"]["total"]
        for t in study.get_trials(deepcopy=False)
        if (is_measured(t) or "cut_short" in t.user_attrs)
        and "duplicate_of" not in t.user_attrs
        and t.user_attrs.get("rung", 0) == rung
        and "total" in t.user_attrs.get("phases", {})
    ]
    if taken:
        return float(np.median(taken))
    if plan is None:
        return 0.0
    return plan.per_trial[min(rung, len(plan.per_trial) - 1)]
