"""Selection and Pareto tables on a real Optuna study: constraints keep violating trials out, rules pick as stated."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from autocompress.engine.select import select as select_among
from autocompress.engine.study import is_feasible, is_measured
from autocompress.engine.view import front_of

TEACHER_BLEU, MAX_DROP = 20.0, 1.0


def select(study: optuna.Study, rule: str) -> optuna.trial.FrozenTrial | None:
    """What the study view selects: the rule among the measured trials that meet the constraints."""
    return select_among([t for t in study.trials if is_measured(t) and is_feasible(t)], rule)


# (bleu, latency, memory, size): the fastest and the smallest of all violate the BLEU constraint
POINTS = [(20.5, 30.0, 150.0, 50.0), (19.6, 12.0, 90.0, 20.0), (19.2, 9.0, 80.0, 14.0), (15.0, 4.0, 60.0, 6.0)]


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for i, (bleu, latency, memory, size) in enumerate(POINTS):
        values = {"bleu": bleu, "latency_p50_ms": latency, "peak_rss_mb": memory, "size_mb": size}
        trial = create_trial(
            state=TrialState.COMPLETE,
            values=[bleu, latency, memory],
            params={"x": float(i)},
            distributions={"x": FloatDistribution(0, 10)},
            user_attrs={"values": values, "recipe_id": f"r{i}"},
            system_attrs={"constraints:bleu_drop": TEACHER_BLEU - MAX_DROP - bleu},
        )
        study.add_trial(trial)
    duplicate = create_trial(
        state=TrialState.COMPLETE,
        values=[19.6, 12.0, 90.0],
        user_attrs={"values": {}, "recipe_id": "r1", "duplicate_of": 1},
        system_attrs={"constraints:bleu_drop": -0.6},
    )
    study.add_trial(duplicate)
    return study


@pytest.mark.parametrize(("rule", "expected"), [("fastest", 2), ("smallest", 2), ("best-bleu", 0), ("knee", 1)])
def test_selection_never_picks_a_trial_that_violates_the_constraint(rule: str, expected: int) -> None:
    chosen = select(_study(), rule)
    assert chosen is not None and chosen.number == expected
    assert chosen.user_attrs["values"]["bleu"] >= TEACHER_BLEU - MAX_DROP


def test_no_candidate_when_every_trial_violates() -> None:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=[10.0, 1.0, 1.0],
            user_attrs={"values": {"bleu": 10.0, "latency_p50_ms": 1.0, "size_mb": 1.0}, "recipe_id": "r"},
            system_attrs={"constraints:bleu_drop": 9.0},
        )
    )
    assert select(study, "fastest") is None


def test_pareto_front_holds_feasible_trials_once_each() -> None:
    front = front_of(_study())
    assert [t.number for t in front] == [0, 1, 2]  # trial 3 violates; the duplicate of 1 is not listed twice


def test_fastest_breaks_a_latency_tie_by_size() -> None:
    """Within the measurement's resolution of the fastest, the smaller artifact wins; beyond it, speed does."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    # (bleu, latency, size): 1 is 1.3 % slower than 0 but 2.4x smaller; 2 is 10 % faster than 0 and largest
    for i, (bleu, latency, size) in enumerate([(20.6, 6.12, 21.6), (20.9, 6.20, 8.7), (20.0, 5.50, 30.0)]):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=[bleu, latency, 100.0],
                user_attrs={"values": {"bleu": bleu, "latency_p50_ms": latency, "size_mb": size}, "recipe_id": f"r{i}"},
                system_attrs={"constraints:bleu_drop": -1.0},
            )
        )
    chosen = select(study, "fastest")
    assert chosen is not None and chosen.number == 2
    study_without_2 = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for trial in study.trials[:2]:
        study_without_2.add_trial(trial)
    chosen = select(study_without_2, "fastest")
    assert chosen is not None and chosen.number == 1
