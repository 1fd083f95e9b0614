"""The Optuna study: the search's only state. Objectives, samplers, storage, the settings fingerprint, recovery.

Everything a trial produced (recipe, signatures, artifact path, durations, failure reason) is a user attribute of
that trial; the teacher's baseline and the search settings are user attributes of the study.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.engine.settings import reconcile
from autocompress.errors import UserInputError
from autocompress.evaluate.objectives import Measure
from autocompress.measure_lock import file_lock

SAMPLERS = ("tpe", "nsga2", "gp", "random")
# The winner of benchmarks/search_efficiency.py (4 samplers × 3 seeds × 60 trials, results/benchmarks/): TPE reached
# random search's 60-trial hypervolume in 25 trials; NSGA-II and GP had not reached it at 60.
DEFAULT_SAMPLER = "tpe"
CONSTRAINT = "bleu_drop"  # Optuna's trial constraint: ≤ 0 where BLEU is within --max-bleu-drop of the teacher
RETIMED = "retimed"  # study attribute: the teacher and the selected model timed again side by side at the end
CUT_OFF = "cut off: the search process stopped while this trial ran; it is run again"


def is_measured(trial: FrozenTrial) -> bool:
    """A complete trial that ran: one that repeated a measured recipe took its values and is the same point."""
    return trial.state == TrialState.COMPLETE and "duplicate_of" not in trial.user_attrs


def is_feasible(trial: FrozenTrial) -> bool:
    """Within every constraint (Optuna's convention: a constraint value ≤ 0 is met)."""
    return all(c <= 0 for c in trial.constraints.values())


def superseded(trials: list[FrozenTrial]) -> set[int]:
    """Trials whose student was trained further (multi-fidelity): a measured trial names its parent."""
    return {int(t.user_attrs["parent"]) for t in trials if is_measured(t) and "parent" in t.user_attrs}


def pareto_ranks(points: list[list[float]], directions: list[str]) -> list[int]:
    """Non-dominated sorting: 0 for the front, 1 for the front without it, and so on."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    costs = [[v * s for v, s in zip(p, signs, strict=True)] for p in points]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    ranks, remaining, rank = [0] * len(points), set(range(len(points))), 0
    while remaining:
        front = {i for i in remaining if not any(dominates(costs[j], costs[i]) for j in remaining if j != i)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise UserInputError(f"sampler {name!r} is unknown: choose from {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            # multivariate + group: the space is conditional (define-by-run); constant liar: parallel workers
            # do not all get the same suggestion while the first ones run. Samplers read the constraints
            # each trial carries (Trial.set_constraint).
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
        if name == "nsga2":
            # The default population (50) is larger than the budgets people run (20–60 trials).
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)


def storage_url(out_dir: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"


def open_study(
    name: str,
    storage: str,
    objectives: tuple[Measure, ...],
    sampler: optuna.samplers.BaseSampler,
    settings: dict[str, Any],
) -> optuna.Study:
    """Create the study, or load it to resume; refuse one made with other settings (autocompress.engine.settings).
    The objectives' titles are the study's metric names, which optuna-dashboard shows."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with _creation_lock(storage):
        study = _create_or_load(name, storage, objectives, sampler)
        reconcile(study, settings)
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([o.title for o in objectives])
    return study


def _creation_lock(storage: str) -> contextlib.AbstractContextManager[Any]:
    """Two drivers started together on one new SQLite file would both create its tables ("table studies already
    exists"): creating, reconciling and naming the study is serialised by a lock file beside the database. Server
    storages (PostgreSQL, MySQL) take the retry in _create_or_load instead; a missing directory is optuna's to
    report, as a storage error."""
    db = Path(storage.removeprefix("sqlite:///"))
    if not storage.startswith("sqlite:///") or not db.parent.is_dir():
        return contextlib.nullcontext()
    return file_lock(db.parent / f".{db.name}.lock", fcntl.LOCK_EX)


# What a server database says when two drivers create optuna's tables at one moment (SQLite, PostgreSQL, MySQL).
_CREATED_TOGETHER = ("already exists", "UNIQUE constraint", "duplicate key", "Duplicate entry")


def _create_or_load(
    name: str, storage: str, objectives: tuple[Measure, ...], sampler: optuna.samplers.BaseSampler
) -> optuna.Study:
    for attempt in range(3):
        try:
            existing = optuna.get_all_study_names(storage)
            break
        except Exception as err:  # any storage error comes from the URL or file the user gave
            if any(hint in str(err) for hint in _CREATED_TOGETHER) and attempt < 2:
                continue  # another driver created the schema at the same moment: it is there now
            raise UserInputError(f"cannot open study storage {storage}: {str(err).splitlines()[0]}") from None
    if existing and name not in existing and storage.startswith("sqlite:///"):
        raise UserInputError(
            f"{storage.removeprefix('sqlite:///')} holds another study ({', '.join(existing)}), not {name!r}: "
            "give another --out directory, or --study with that name to resume it"
        )
    return optuna.create_study(
        study_name=name,
        storage=storage,
        directions=[o.direction for o in objectives],
        sampler=sampler,
        load_if_exists=True,
    )


def recover_cut_off(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a search process that died: marked FAIL with the reason, and queued to run again."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        driver = trial.user_attrs.get("driver", {})
        if driver.get("host") == socket.gethostname() and alive(driver.get("pid")):
            continue  # another search process on this machine is running it
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("fail_reason", CUT_OFF)
        study.tell(trial.number, state=TrialState.FAIL)
        lineage = {k: v for k, v in trial.user_attrs.items() if k in ("rung", "parent")}
        study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number, **lineage}, skip_if_exists=False)
        recovered.append(trial.number)
    return recovered


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return pid != os.getpid()
