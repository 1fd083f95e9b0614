"""What a search is asked to do: one frozen value built from the command line or the Python API."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from autocompress.engine.budget import Budget
from autocompress.engine.study import DEFAULT_SAMPLER
from autocompress.errors import UserInputError
from autocompress.evaluate.objectives import DEFAULT_OBJECTIVES, Measure, objectives
from autocompress.space import SearchSpace
from autocompress.target import TargetSpec


@dataclass(frozen=True)
class SearchConfig:
    model: str = "demo"
    train: str = "demo:train"
    dev: str = "demo:dev"
    space: SearchSpace | None = None  # None: the shipped space of the target's device
    target: TargetSpec = field(default_factory=TargetSpec)
    budget: Budget = field(default_factory=lambda: Budget(trials=20))
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    sampler: str = DEFAULT_SAMPLER
    seed: int = 0
    out: Path = Path("results/search")
    study: str | None = None  # None: the name of the output directory
    storage: str | None = None  # any Optuna RDB URL; None: out/study.db
    workers: int = 1
    cpus_per_trial: float | None = None  # None: the machine's cores shared among the workers
    gpus_per_trial: float | None = None  # None: 1 on a CUDA target, else 0
    address: str | None = None  # a running Ray cluster; None: a local Ray
    trial_timeout: float | None = None
    max_bleu_drop: float | None = 1.0  # against the teacher's baseline BLEU; None: no constraint
    select: str = "fastest"
    dev_sentences: int | None = None  # None: the space's evaluation.dev_sentences, else the whole dev set
    # The model's task (autocompress.task); None: what the model and its tokenizer say.
    source_prefix: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None

    def task_options(self) -> dict[str, str]:
        given = {"source_prefix": self.source_prefix, "source_lang": self.source_lang, "target_lang": self.target_lang}
        return {k: v for k, v in given.items() if v is not None}

    def measures(self) -> tuple[Measure, ...]:
        """The objectives as measurements of this target (throughput at its largest batch size)."""
        return objectives(self.objectives, self.target.batch_sizes)

    @property
    def study_name(self) -> str:
        return self.study or self.out.resolve().name

    def trial_cpus(self) -> float:
        if self.cpus_per_trial is not None:
            return self.cpus_per_trial
        return max(1, (os.cpu_count() or 1) // self.workers)

    def trial_gpus(self) -> float:
        if self.gpus_per_trial is not None:
            return self.gpus_per_trial
        return 1.0 if self.target.device == "cuda" else 0.0


def resolve_out(config: SearchConfig) -> Path:
    """The output directory, made absolute and created (a file in its place is refused)."""
    out = config.out.resolve()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file: give a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out
