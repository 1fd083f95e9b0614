"""Which student goes on to the next rung: the one whose training is expected to add most to the front measured so
far, not the one with the highest BLEU (a slow student the teacher's own precisions already beat gains nothing)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from autocompress.engine.promotion import hypervolume, promotion
from autocompress.space import Fidelity

OBJECTIVES = ["bleu", "latency_p50_ms"]
STUDENT = {"passes": [{"name": "layers", "params": {}}, {"name": "distill", "params": {"steps": 0}}]}
TEACHER_INT8 = {"passes": [{"name": "precision", "params": {"dtype": "int8"}}]}


def test_hypervolume_is_exact_in_two_and_three_objectives() -> None:
    assert hypervolume(np.array([[0.0, 0.0]])) == pytest.approx(1.21)
    assert hypervolume(np.array([[0.5, 0.0], [0.0, 0.5]])) == pytest.approx(0.66 + 0.66 - 0.36)
    assert hypervolume(np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])) == pytest.approx(1.331)
    assert hypervolume(np.array([[1.2, 0.0]])) == 0.0  # beyond the reference point: nothing


def _study(rows: list[tuple[dict, float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("baseline", {"values": {"bleu": 20.92, "latency_p50_ms": 31.0}})  # the fp32 teacher
    x = FloatDistribution(0, 1)
    for number, (recipe, bleu, latency) in enumerate(rows):
        attrs = {"rung": 0, "recipe": recipe, "values": {"bleu": bleu, "latency_p50_ms": latency}}
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=[bleu, latency],
                params={"x": number / 10},
                distributions={"x": x},
                user_attrs=attrs,
            )
        )
    return study


def test_the_student_the_front_does_not_already_beat_is_promoted() -> None:
    """Four students at rung 0 (eta 4: one goes on). The slowest has the highest BLEU, but a teacher at int8 is
    faster and better, and near the teacher training adds little: training it gains nothing. The fast student on the
    front's empty end, far below the teacher's BLEU, is promoted."""
    study = _study(
        [
            (TEACHER_INT8, 20.9, 6.0),
            (STUDENT, 20.1, 3.0),  # fast, alone at its end of the front
            (STUDENT, 19.2, 3.7),  # dominated by the one above
            (STUDENT, 19.7, 2.3),
            (STUDENT, 20.5, 12.3),  # the highest BLEU of the students, and slower than the int8 teacher
        ]
    )
    chosen = promotion(study, Fidelity((0, 200, 800), 4), OBJECTIVES)
    assert chosen is not None and chosen.number == 1
    assert promotion(study, Fidelity((0, 200, 800), 8), OBJECTIVES) is None  # eta 8: not enough measured yet
