"""The Optuna study: the search's only state. Objectives, samplers, storage, the settings fingerprint, recovery.

Everything a trial produced (recipe, signatures, artifact path, durations, failure reason) is a user attribute of
that trial; the teacher's baseline and the search settings are user attributes of the study.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autocompress.errors import UserInputError


@dataclass(frozen=True)
class Objective:
    key: str  # the measurement it reads (autocompress.evaluate)
    direction: str
    label: str


OBJECTIVES = {
    "bleu": Objective("bleu", "maximize", "BLEU"),
    "chrf": Objective("chrf", "maximize", "chrF"),
    "latency": Objective("latency_p50_ms", "minimize", "p50 latency (ms, batch 1)"),
    "latency_p95": Objective("latency_p95_ms", "minimize", "p95 latency (ms, batch 1)"),
    "memory": Objective("peak_rss_mb", "minimize", "peak RSS (MiB)"),
    "size": Objective("size_mb", "minimize", "size on disk (MiB)"),
    "throughput": Objective("throughput_b16", "maximize", "sentences/s at batch 16"),
}
DEFAULT_OBJECTIVES = ("bleu", "latency", "memory")
SAMPLERS = ("tpe", "nsga2", "gp", "random")
# The winner of benchmarks/search_efficiency.py (4 samplers × 3 seeds × 60 trials, results/benchmarks/): TPE reached
# random search's 60-trial hypervolume in 25 trials; NSGA-II and GP had not reached it at 60.
DEFAULT_SAMPLER = "tpe"
CONSTRAINT = "bleu_drop"  # Optuna's trial constraint: ≤ 0 where BLEU is within --max-bleu-drop of the teacher
CUT_OFF = "cut off: the search process stopped while this trial ran; it is run again"


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise UserInputError(
            f"objective {unknown[0] if unknown else text!r} is unknown: choose from {', '.join(OBJECTIVES)}"
        )
    if "bleu" not in names and "chrf" not in names:
        raise UserInputError("the objectives need a quality measure: include bleu or chrf")
    return names


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
    name: str, storage: str, directions: list[str], sampler: optuna.samplers.BaseSampler, settings: dict[str, Any]
) -> optuna.Study:
    """Create the study, or load it to resume; refuse one made with other settings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        existing = optuna.get_all_study_names(storage)
    except Exception as err:  # any storage error comes from the URL or file the user gave
        raise UserInputError(f"cannot open study storage {storage}: {str(err).splitlines()[0]}") from None
    if existing and name not in existing and storage.startswith("sqlite:///"):
        raise UserInputError(
            f"{storage.removeprefix('sqlite:///')} holds another study ({', '.join(existing)}), not {name!r}: "
            "give another --out directory, or --study with that name to resume it"
        )
    study = optuna.create_study(
        study_name=name, storage=storage, directions=directions, sampler=sampler, load_if_exists=True
    )
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings)
    elif recorded != settings:
        changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        raise UserInputError(
            f"study {name!r} was run with other settings ({', '.join(changed)}): rerun with the same settings to "
            "resume it, or give another --study / --out for a new search"
        )
    return study


def recover_cut_off(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a search process that died: marked FAIL with the reason, and queued to run again."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        driver = trial.user_attrs.get("driver", {})
        if driver.get("host") == socket.gethostname() and _alive(driver.get("pid")):
            continue  # another search process on this machine is running it
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("fail_reason", CUT_OFF)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number}, skip_if_exists=False)
        recovered.append(trial.number)
    return recovered


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return pid != os.getpid()


def settings_fingerprint(**settings: Any) -> dict[str, Any]:
    return json.loads(json.dumps(settings, sort_keys=True, default=str))
