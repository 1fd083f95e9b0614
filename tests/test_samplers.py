"""Every sampler the search offers runs past its random start-up on a multi-objective, constrained study."""

from __future__ import annotations

import optuna
import pytest

from autocompress.engine.study import CONSTRAINT, SAMPLERS, make_sampler


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_suggests_beyond_its_startup_trials(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(name, seed=0))
    for _ in range(14):  # TPE and GP start with 10 random trials, NSGA-II with a population of 10
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        layers = trial.suggest_int("layers", 1, 6)
        kind = trial.suggest_categorical("kind", ["int8", "int4"])
        trial.set_constraint(CONSTRAINT, x - 0.9)
        study.tell(trial, [x * layers + (kind == "int8"), layers * (1.5 - x)])
    assert len(study.best_trials) >= 1
    assert all(t.state.name == "COMPLETE" for t in study.trials)
