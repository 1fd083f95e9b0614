"""One view of a study, computed once: what every output reads (tables, plots, report.html, the exported model's card,
the JSON summary, `autocompress pareto`), as Optuna computes `_ParetoFrontInfo` once for its renderers.

The teacher's baseline, the measured trials (a trial that repeated a measured recipe is the same point, left out; a
student trained further to a higher rung counts once, at its highest), the feasible ones, the front (non-dominated,
feasible), and the trial the selection rule picks; with the search's objectives and every measurement its trials
record, read from the study's settings.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial

from autocompress.engine.select import RULES, select
from autocompress.engine.settings import recorded_settings, study_measures
from autocompress.engine.study import RETIMED, is_feasible, is_measured, pareto_ranks, superseded
from autocompress.errors import UserInputError
from autocompress.evaluate.objectives import Measure


class StudyView(NamedTuple):
    study: optuna.Study
    settings: dict[str, Any]
    objectives: tuple[Measure, ...]  # what the search optimised, in the study's order
    measures: tuple[Measure, ...]  # every measurement a trial records
    baseline: dict[str, Any]  # the teacher measured in the same harness: values, signatures, artifact, recipe
    measured: list[FrozenTrial]
    feasible: list[FrozenTrial]
    front: list[FrozenTrial]
    selected: FrozenTrial | None
    rule: str
    max_bleu_drop: float | None

    @property
    def name(self) -> str:
        return self.study.study_name


def current(study: optuna.Study) -> list[FrozenTrial]:
    """The measured trials, each student at its highest rung (multi-fidelity: a parent trained further is left out)."""
    trials = study.get_trials(deepcopy=False)
    later = superseded(trials)
    return [t for t in trials if is_measured(t) and t.number not in later]


def front_of(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated trials among the current ones (feasible ones only, when there are constraints), as Optuna's
    best_trials would give them without the lower rungs of students trained further."""
    trials = current(study)
    if any(t.constraints for t in trials):
        trials = [t for t in trials if is_feasible(t)]
    directions = [d.name.lower() for d in study.directions]
    ranks = pareto_ranks([list(t.values) for t in trials], directions)
    return [t for t, rank in zip(trials, ranks, strict=True) if rank == 0]


def study_view(study: optuna.Study, rule: str | None = None) -> StudyView:
    """`rule` overrides the selection rule the search was run with (its settings' `select`)."""
    settings = recorded_settings(study)
    objectives, measures = study_measures(settings)
    rule = rule or settings["select"]
    if rule not in RULES:
        raise UserInputError(f"--select {rule!r} is unknown: choose from {', '.join(RULES)}")
    measured = current(study)
    feasible = [t for t in measured if is_feasible(t)]
    return StudyView(
        study=study,
        settings=settings,
        objectives=objectives,
        measures=measures,
        baseline=study.user_attrs.get("baseline", {}),
        measured=measured,
        feasible=feasible,
        front=front_of(study) if measured else [],
        selected=select(feasible, rule),
        rule=rule,
        max_bleu_drop=settings["max_bleu_drop"],
    )


RETIMED_NOTE = "Timings: the teacher and this model timed again side by side at the end of the search (interleaved)."


def comparison(view: StudyView, trial: FrozenTrial) -> list[dict[str, Any]]:
    """The teacher against a trial's model, every measurement: BLEU/chrF as differences, the rest as the ratio in the
    better direction. Timings of the model the search selected come from the side-by-side timing taken at the end of
    the search (both re-timed, interleaved), when there is one for that trial: `retimed` says which rows."""
    teacher, values = dict(view.baseline.get("values", {})), dict(trial.user_attrs["values"])
    retimed = view.study.user_attrs.get(RETIMED) or {}
    side_by_side = retimed.get("trial") == trial.number
    if side_by_side:
        teacher |= retimed["teacher"]
        values |= retimed["model"]
    rows = []
    for measure in view.measures:
        a, b = teacher.get(measure.key), values.get(measure.key)
        if a is None or b is None:
            continue
        if not measure.unit:  # scores: a difference says more than a ratio
            change = f"{b - a:+.2f}"
        elif not a or not b:
            change = "-"
        else:
            gain = b / a if measure.higher_is_better else a / b  # > 1: the model is better than the teacher
            change = f"{gain:.2f}× better" if gain >= 1 else f"{1 / gain:.2f}× worse"
        row = {"measure": measure.title, "teacher": a, "model": b, "change": change}
        rows.append(row | {"retimed": side_by_side and measure.key in retimed["teacher"]})
    return rows


def teacher_layers(view: StudyView) -> tuple[int, int] | None:
    """The teacher's (encoder, decoder) layer counts, read from its baseline artifact; None where it is gone."""
    from pathlib import Path

    from autocompress.manifest import Manifest, is_artifact

    artifact = Path(view.baseline.get("artifact") or "")
    if not view.baseline.get("artifact") or not is_artifact(artifact):
        return None
    structure = Manifest.read(artifact).structure
    encoder, decoder = structure.get("encoder_heads"), structure.get("self_heads")
    return (len(encoder), len(decoder)) if encoder and decoder else None
