"""Telling the study what became of each trial the driver asked: measured, a twin taking a measured, cut or failed
trial's verdict, the baseline's own recipe, cut short, failed (and queued again where a rerun may differ), skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.engine.config import SearchConfig
from autocompress.engine.progress import Progress
from autocompress.engine.study import CONSTRAINT

SHARED_BY_TWINS = ("driver", "duplicate_of")  # the attributes a twin does not copy from the trial it takes after


@dataclass
class Teller:
    study: optuna.Study
    config: SearchConfig
    progress: Progress
    trials: dict[int, optuna.Trial] = field(default_factory=dict)  # asked by this driver and not told yet

    @property
    def baseline(self) -> dict[str, Any]:
        return self.study.user_attrs["baseline"]

    def measured(self, trial: optuna.Trial, values: dict[str, float]) -> None:
        self.constrain(trial, values)
        self.study.tell(trial, self.values(values))

    def cut(self, trial: optuna.Trial, cut: dict[str, Any]) -> None:
        """A candidate whose measuring stopped early (slower than the teacher): kept with what was measured and why,
        as a pruned trial, so it is never a front member."""
        trial.set_user_attr("cut_short", cut)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.progress.log(f"trial {trial.number}: cut short, {cut['reason']}; its BLEU was not decoded")

    def cut_twin(self, trial: optuna.Trial, cut: FrozenTrial) -> None:
        self._copy(trial, cut)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.progress.log(f"trial {trial.number}: the recipe of trial {cut.number}, cut short before")

    def duplicate(self, trial: optuna.Trial, measured: FrozenTrial) -> None:
        """A recipe already measured is not recomputed: the trial takes that trial's values and lineage."""
        self._copy(trial, measured)
        for key, value in measured.constraints.items():
            trial.set_constraint(key, value)
        self.study.tell(trial, measured.values)
        self.progress.log(f"trial {trial.number}: the recipe of trial {measured.number}, its measurement reused")

    def teacher(self, trial: optuna.Trial) -> None:
        """The teacher's own recipe: measured at the start, so the trial takes the baseline's values."""
        for key, value in self.baseline.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", "baseline")
        self.measured(trial, self.baseline["values"])
        self.trials.pop(trial.number, None)
        self.progress.log(f"trial {trial.number}: the teacher's own recipe, the baseline's measurement reused")

    def failed(self, number: int, reason: str, detail: str | None = None, requeue: bool = False) -> None:
        trial = self.trials.pop(number, None) or optuna.trial.Trial(self.study, self.study.trials[number]._trial_id)
        trial.set_user_attr("fail_reason", reason)
        if detail:
            trial.set_user_attr("traceback", detail[-4000:])
        self.study.tell(trial, state=TrialState.FAIL)
        self.progress.log(f"trial {number} failed: {reason}")
        if requeue:
            original = self.study.trials[number]
            lineage = {k: v for k, v in original.user_attrs.items() if k in ("rung", "parent")}
            self.study.enqueue_trial(original.params, user_attrs={"rerun_of": number, **lineage})

    def skipped(self, number: int) -> None:
        trial = self.trials.pop(number)
        trial.set_user_attr("skipped", "the trial budget was filled by trials asked before it (another driver)")
        self.study.tell(trial, state=TrialState.PRUNED)

    def constrain(self, trial: optuna.Trial, measured: dict[str, float]) -> None:
        """The BLEU constraint, for the samplers (Optuna's trial constraint) and, as `feasible`, for people: tools
        that read user attributes (optuna-dashboard 0.21) do not read Optuna 5's named constraints."""
        if self.config.max_bleu_drop is not None:
            drop = self.bleu_drop(measured)
            trial.set_constraint(CONSTRAINT, drop)
            trial.set_user_attr("feasible", drop <= 0)

    def values(self, measured: dict[str, float]) -> list[float]:
        return [measured[objective.key] for objective in self.config.measures()]

    def bleu_drop(self, measured: dict[str, float]) -> float:
        """Optuna's convention, ≤ 0 is feasible: BLEU may drop at most max_bleu_drop below the teacher's."""
        assert self.config.max_bleu_drop is not None
        return round(self.baseline["values"]["bleu"] - self.config.max_bleu_drop - measured["bleu"], 4)

    def _copy(self, trial: optuna.Trial, source: FrozenTrial) -> None:
        for key, value in source.user_attrs.items():
            if key not in SHARED_BY_TWINS:
                trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", source.number)
        self.trials.pop(trial.number, None)
