"""The search's whole configuration, versioned and stored in the study: what a resumed search must match, and what
later commands (report, export, pareto) read instead of assuming defaults.

Resuming compares RESUME_KEYS, everything that changes what a trial measures or which recipes are drawn; a difference
is refused in one line naming the keys. The rest (the selection rule, workers, budget, timeouts) may change between
runs of the same study; the latest run's values are kept, so `autocompress report` selects as the last search did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.errors import UserInputError
from autocompress.evaluate.objectives import Measure, measures, objectives

if TYPE_CHECKING:
    import optuna

    from autocompress.engine.config import SearchConfig
    from autocompress.space import SearchSpace
    from autocompress.task import Task

SETTINGS_VERSION = 2
SETTINGS_ATTR = "settings"
RESUME_KEYS = (
    "version",
    "model",
    "model_fingerprint",
    "train",
    "dev",
    "dev_sentences",
    "space",
    "target",
    "objectives",
    "max_bleu_drop",
    "sampler",
    "seed",
    "task",
)
WEIGHT_FILES = ("config.json", "generation_config.json", "structure.json", "*.safetensors", "*.bin")


def model_fingerprint(directory: Path) -> str:
    """A content hash of the model's config and weight files: a teacher retrained at the same path is another
    teacher, whose study must not be resumed with the old one's baseline and artifacts."""
    digest = hashlib.sha256()
    for pattern in WEIGHT_FILES:
        for path in sorted(directory.glob(pattern)):
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:20]


def search_settings(config: SearchConfig, space: SearchSpace, task: Task, model_dir: Path) -> dict[str, Any]:
    """Every option of the search, as plain JSON."""
    settings = {
        "version": SETTINGS_VERSION,
        "model": str(model_dir),
        "model_fingerprint": model_fingerprint(model_dir),
        "train": config.train,
        "dev": config.dev,
        "dev_sentences": config.dev_sentences or space.evaluation.get("dev_sentences"),
        "space": {
            "name": space.name,
            "students": list(space.students),
            "dimensions": [dataclasses.asdict(d) for d in space.dimensions],
            "evaluation": space.evaluation,
            "fidelity": dataclasses.asdict(space.fidelity) if space.fidelity else None,
            "elastic": space.elastic,
        },
        "space_sha256": space.sha256,
        "target": config.target.to_dict(),
        "objectives": list(config.objectives),
        "max_bleu_drop": config.max_bleu_drop,
        "sampler": config.sampler,
        "seed": config.seed,
        "task": task.to_dict(),
        "select": config.select,
        "budget": dataclasses.asdict(config.budget),
        "workers": config.workers,
        "cpus_per_trial": config.cpus_per_trial,
        "gpus_per_trial": config.gpus_per_trial,
        "trial_timeout": config.trial_timeout,
        "address": config.address,
    }
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def reconcile(study: optuna.Study, settings: dict[str, Any]) -> dict[str, Any]:
    """Store the settings in a new study; in a resumed one refuse other RESUME_KEYS, then keep the latest values of
    the others."""
    recorded = study.user_attrs.get(SETTINGS_ATTR)
    if recorded is not None:
        if recorded.get("version") != SETTINGS_VERSION:
            raise UserInputError(
                f"study {study.study_name!r} was made by another autocompress (settings version "
                f"{recorded.get('version', 1)}, this one writes {SETTINGS_VERSION}): give another --out or --study"
            )
        changed = [key for key in RESUME_KEYS if recorded.get(key) != settings.get(key)]
        if changed:
            raise UserInputError(
                f"study {study.study_name!r} was run with other {', '.join(changed)}: rerun with the same settings to "
                "resume it, or give another --out or --study for a new search"
            )
    study.set_user_attr(SETTINGS_ATTR, settings)
    return settings


def recorded_settings(study: optuna.Study) -> dict[str, Any]:
    """The settings of the study's last search, for the commands that read a study afterwards."""
    settings = study.user_attrs.get(SETTINGS_ATTR)
    if not settings or settings.get("version") != SETTINGS_VERSION:
        found = "none" if not settings else f"version {settings.get('version', 1)}"
        raise UserInputError(
            f"study {study.study_name!r} holds no settings this autocompress reads ({found}; it reads version "
            f"{SETTINGS_VERSION}): run the search again into a new --out"
        )
    return settings


def study_measures(settings: dict[str, Any]) -> tuple[tuple[Measure, ...], tuple[Measure, ...]]:
    """(the search's objectives, every measurement its trials record), for the target it measured on."""
    batch_sizes = settings["target"]["batch_sizes"]
    return objectives(settings["objectives"], batch_sizes), measures(batch_sizes)
