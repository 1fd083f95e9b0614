"""The run planned to its budget and kept to it: the units timed and the plan made (engine/plan.py) before the heavy
work, the teacher's one-off artifacts built with the whole machine, and the budget's clock read for admission, the
overrun and the progress lines' ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial

from autocompress.engine import records
from autocompress.engine.plan import Plan, make_plan
from autocompress.engine.promotion import promotion, trial_seconds
from autocompress.space import teacher_only

if TYPE_CHECKING:
    from autocompress.engine.driver import Driver


@dataclass
class Planning:
    driver: Driver
    plan: Plan | None = None
    elastic_steps: int | None = None  # the elastic student's steps when the plan cut them to the budget

    def make(self, probe: Callable[..., dict[str, Any]]) -> Plan:
        """Time a few units of every phase on this machine (`probe`: on Ray, or in this process), then plan the run
        to its budget; printed and kept in the study. A resumed study keeps the cut its first plan made."""
        from autocompress.space import teacher_artifacts

        d = self.driver
        earlier = d.study.user_attrs.get("plan") or {}
        self._adapt(earlier.get("elastic_steps"), bool(earlier.get("precision_only")))
        d.progress.log("timing a few units of each phase on this machine, to plan the run")
        probed = probe(d.whole_machine_job(-4), teacher_artifacts(d.space), self.train_tokens, d.stop.check)
        budget, space = d.config.budget, d.space
        plan = make_plan(
            probed["units"],
            tuple(probed["missing"]),
            d.config.target.to_dict(),
            int(probed["units"]["dev_sentences"]),
            self.rungs,
            self.train_tokens,
            self.elastic.to_dict() if self.elastic is not None else None,
            budget.seconds,
            budget.trials,
            time.monotonic() - d.started,
            "pruned" in space.students,
            space.fidelity.eta if space.fidelity is not None else 4,
        )
        self._adapt(plan.elastic_steps, plan.precision_only)
        self.plan = plan
        d.actuals["probe"] = plan.estimates["probe"]
        d.study.set_user_attr("plan", plan.to_dict())
        for line in plan.lines():
            d.progress.log(line)
        return plan

    def _adapt(self, elastic_steps: int | None, precision_only: bool) -> None:
        if elastic_steps:
            self.elastic_steps = int(elastic_steps)
        if precision_only:
            self.driver.space = teacher_only(self.driver.space)

    def prepare(self) -> None:
        """What the trials will ask of the teacher (importance, its translations of the training data, the elastic
        student), built once with the whole machine before they start, or found in the cache; a line a minute."""
        from autocompress.space import teacher_artifacts

        d = self.driver
        artifacts = teacher_artifacts(d.space)
        if not artifacts:
            return
        assert d.executor is not None
        d.progress.log(f"preparing the teacher's {', '.join(artifacts)} (built once, then cached)")
        started, said = time.monotonic(), [time.monotonic()]
        planned = self.plan.prepare_s if self.plan is not None else 0.0

        def waiting() -> None:  # the stop check, and a line a minute: the one-off work can take long
            d.stop.check()
            if time.monotonic() - said[0] >= 60:
                said[0] = time.monotonic()
                of = f" of ≈ {planned / 60:.1f} planned" if planned else ""
                d.progress.log(f"  preparing: {(said[0] - started) / 60:.0f} min{of}")

        for name, entry in d.executor.prepare(d.whole_machine_job(-2), artifacts, waiting).items():
            state = "cached" if entry.get("hit") else f"built in {entry.get('seconds', 0):.0f} s"
            d.progress.log(f"  {name}: {state}")
            if not entry.get("hit"):
                d.actuals[f"prepare:{name}"] = round(float(entry.get("seconds", 0.0)), 1)
        d.actuals["prepare"] = round(time.monotonic() - started, 1)
        d.study.set_user_attr("actuals", d.actuals)

    @property
    def rungs(self) -> tuple[int, ...]:
        """A student's training steps at each rung (one entry without rungs: the distillation's steps)."""
        space = self.driver.space
        if space.fidelity is not None:
            return space.fidelity.rungs
        steps = space.dimension("distill", "steps")
        return (int(max(steps.values)) if steps is not None else 400,)

    @property
    def train_tokens(self) -> int:
        tokens = self.driver.space.dimension("distill", "max_tokens")
        return int(max(tokens.values)) if tokens is not None else 1500

    @property
    def elastic(self) -> Any:
        """The elastic student's settings, when the space lets students start from one (teacher.elastic)."""
        from autocompress.teacher.elastic import settings_from_space, uses_elastic

        space = self.driver.space
        if not uses_elastic(space) or "pruned" not in space.students:
            return None
        settings = settings_from_space(space, self.driver.info.layers)
        return settings if self.elastic_steps is None else settings.cut_to(self.elastic_steps)

    def left(self) -> float | None:
        """Seconds of the wall-time budget left for trials (the final outputs' estimate kept back); None: no limit."""
        seconds = self.driver.config.budget.seconds
        if seconds is None:
            return None
        outputs = self.plan.estimates["outputs"] if self.plan is not None else 0.0
        return self.driver.started + seconds - outputs - time.monotonic()

    def admit(self) -> tuple[bool, FrozenTrial | None]:
        """(whether another trial fits the budget's time, the student to promote if its rung fits too): a promotion
        whose training would overrun the budget gives way to a new trial at the first rung."""
        study = self.driver.study
        objectives = [m.key for m in self.driver.config.measures()]
        parent, left = promotion(study, self.driver.space.fidelity, objectives), self.left()
        if left is None:
            return True, parent
        if parent is not None and trial_seconds(study, self.plan, parent.user_attrs.get("rung", 0) + 1) <= left:
            return True, parent
        return trial_seconds(study, self.plan, 0) <= left, None

    def overdue(self) -> bool:
        """Running trials are past the budget by more than its slack (5 %, at least one minute)."""
        left, seconds = self.left(), self.driver.config.budget.seconds
        return left is not None and seconds is not None and -left > max(60.0, 0.05 * seconds)

    def eta(self) -> str:
        """Where the run stands against its plan, for the progress lines."""
        d = self.driver
        elapsed = time.monotonic() - d.started
        if d.config.budget.seconds is not None:
            return f" [{elapsed / 60:.1f} of {d.config.budget.seconds / 60:g} min]"
        trials_left = max(0, (d.config.budget.trials or 0) - records.completed(d.study))
        left = trials_left * trial_seconds(d.study, self.plan, 0)
        outputs = self.plan.estimates["outputs"] if self.plan is not None else 0.0
        return f" [{elapsed / 60:.1f} min; ≈ {(left + outputs) / 60:.1f} min left]"
