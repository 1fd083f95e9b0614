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

# What training to the next rung is expected to add to a student's quality: this share of its gap to the teacher's,
# or the median share the promotions measured from that rung closed. On the demo, students sliced from the elastic
# student closed 26-67 % of their gap in 200-800 steps (4+1: 19.71 → 20.02, 2+2: 20.09 → 20.65, teacher 20.92), and
# one within half a BLEU of the teacher lost 0.46 in 200 steps: the nearer the teacher, the less training adds.
GAP_CLOSED = 0.3


def promotion(study: optuna.Study, fidelity: Fidelity | None, objectives: list[str]) -> FrozenTrial | None:
    """Of the students measured at a rung, 1/eta go on to the next, as soon as enough have been measured there (the
    highest rung first). Which one: the student whose training is expected to add most hypervolume to what the study
    has measured (every trial, teachers at other precisions included, and the baseline), if training closed the share
    of its quality gap to the teacher that promotions from that rung have closed: a student the front already beats
    at its latency gains nothing, however high its BLEU. Ties (all zero) go by Pareto rank among the waiting
    students, then by quality. `objectives`: the study's measure keys, in the order of its values."""
    if fidelity is None:
        return None
    trials = study.get_trials(deepcopy=False)
    promoted = {t.user_attrs["parent"] for t in trials if "parent" in t.user_attrs}
    directions = [d.name.lower() for d in study.directions]
    measured = [t for t in trials if is_measured(t)]
    points = [list(t.values) for t in measured]
    if "baseline" in study.user_attrs:  # the teacher as it is: measured first, a point of every front
        points.append([study.user_attrs["baseline"]["values"][key] for key in objectives])
    quality = "bleu" if "bleu" in objectives else "chrf"
    index = objectives.index(quality)
    for rung in reversed(range(len(fidelity.rungs) - 1)):
        done = [t for t in measured if t.user_attrs.get("rung", 0) == rung and trains(t.user_attrs.get("recipe", {}))]
        waiting = [t for t in done if t.number not in promoted]
        if not waiting or len(done) // fidelity.eta <= len(done) - len(waiting):
            continue
        teacher = study.user_attrs.get("baseline", {}).get("values", {}).get(quality)
        share = _gap_closed(measured, rung, quality, teacher)
        ranks = pareto_ranks([list(t.values) for t in waiting], directions)
        scored = []
        for rank, trial in zip(ranks, waiting, strict=True):
            raised = list(trial.values)
            if teacher is not None:
                raised[index] += share * max(0.0, teacher - trial.user_attrs["values"][quality])
            scored.append((hypervolume_gain(points, raised, directions), -rank, trial.user_attrs["values"][quality]))
        best = max(range(len(waiting)), key=lambda k: scored[k])
        return waiting[best]
    return None


def _gap_closed(measured: list[FrozenTrial], rung: int, quality: str, teacher: float | None) -> float:
    """The median share of their quality gap to the teacher that students promoted from this rung closed at the
    next (negative where training cost quality), else GAP_CLOSED."""
    by_number = {t.number: t for t in measured}
    shares = []
    for t in measured:
        parent = by_number.get(t.user_attrs.get("parent", -1))
        if t.user_attrs.get("rung") == rung + 1 and parent is not None and teacher is not None:
            gap = teacher - parent.user_attrs["values"][quality]
            if gap > 0.05:  # a student at the teacher's quality says nothing about closing a gap
                shares.append((t.user_attrs["values"][quality] - parent.user_attrs["values"][quality]) / gap)
    return float(np.median(shares)) if shares else GAP_CLOSED


def hypervolume_gain(points: list[list[float]], candidate: list[float], directions: list[str]) -> float:
    """How much `candidate` adds to the hypervolume of `points`. Costs (latency, memory, size: minimised, positive)
    are compared as ratios, on a log scale, as speedups are read: halving 3 ms counts as much as halving 30 ms. Each
    objective is scaled between the best and worst value among the points and the candidate, reference point 1.1."""
    values = np.array([*points, candidate], dtype=float)
    for k, direction in enumerate(directions):
        if direction == "minimize" and (values[:, k] > 0).all():
            values[:, k] = np.log(values[:, k])
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    costs = values * signs
    low, high = costs.min(0), costs.max(0)
    scaled = (costs - low) / np.where(high > low, high - low, 1.0)
    return hypervolume(scaled) - hypervolume(scaled[:-1])


def hypervolume(costs: np.ndarray, reference: float = 1.1) -> float:
    """The hypervolume of points to minimise below a reference point (every coordinate `reference`), exact: slices
    along the last objective, each the hypervolume of the points below it in one objective fewer (tens of points
    and two to four objectives: milliseconds)."""
    costs = costs[(costs < reference).all(axis=1)] if len(costs) else costs
    if len(costs) == 0:
        return 0.0
    if costs.shape[1] == 1:
        return float(reference - costs[:, 0].min())
    order = np.argsort(costs[:, -1])
    costs = costs[order]
    bounds = [*costs[1:, -1], reference]
    return float(
        sum(hypervolume(costs[: k + 1, :-1], reference) * (bounds[k] - costs[k, -1]) for k in range(len(costs)))
    )


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
