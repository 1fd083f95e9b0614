"""The search loop. The driver alone asks and tells; workers only run TrialJobs.

plan → baseline → the teacher's one-off work → ask → define-by-run recipe → (already measured, cut or failed? the
trial takes that verdict; being measured? it waits) → submit → collect → tell → the selected model timed again
beside the teacher. Each step's bookkeeping has its module: engine/planning.py, baseline.py, records.py (what the
study holds, across drivers), promotion.py (fidelity rungs), teller.py (telling the study).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from autocompress.engine import records
from autocompress.engine.baseline import baseline_recipe, measure_baseline, retime_selected
from autocompress.engine.config import SearchConfig
from autocompress.engine.executor import Finished, RayExecutor
from autocompress.engine.model_info import ModelInfo
from autocompress.engine.plan import Plan
from autocompress.engine.planning import Planning
from autocompress.engine.progress import Progress
from autocompress.engine.stop import StopRequested, StopSignals
from autocompress.engine.study import is_measured, make_sampler, recover_cut_off
from autocompress.engine.teller import Teller
from autocompress.engine.worker import TrialJob
from autocompress.errors import RunFailed
from autocompress.passes.recipe import Recipe
from autocompress.space import SearchSpace, at_rung, start_params, suggest_recipe
from autocompress.task import Task

EXHAUSTED_AFTER = 30  # suggestions in a row that repeat measured recipes: the sampler has nothing new to offer
STOPPED = "stopped by the user (Ctrl-C); it is run again when the search resumes"


@dataclass
class Driver:
    config: SearchConfig
    space: SearchSpace
    info: ModelInfo
    study: optuna.Study
    progress: Progress
    task: Task = field(default_factory=Task)  # resolved from the model and the options: every recipe carries it
    executor: RayExecutor | None = None
    started: float = field(default_factory=time.monotonic)
    waiting: dict[str, list[int]] = field(default_factory=dict)  # recipe id being measured → trials waiting on it
    elsewhere: dict[int, int] = field(default_factory=dict)  # trial → another driver's trial measuring its recipe
    reseeded: bool = False
    failed_in_a_row: int = 0
    duplicates_in_a_row: int = 0
    stop: StopSignals = field(default_factory=StopSignals)
    actuals: dict[str, float] = field(default_factory=dict)  # phase → seconds it took (the plan's estimates beside)

    def __post_init__(self) -> None:
        self.tell = Teller(self.study, self.config, self.progress)
        self.planning = Planning(self)

    def run(self) -> None:
        recorded = self.study.get_trials(deepcopy=False)
        if recorded:
            measured = sum(1 for t in recorded if is_measured(t))
            self.progress.log(f"resuming study {self.study.study_name}: {len(recorded)} trials, {measured} measured")
        recovered = recover_cut_off(self.study)
        if recovered:
            self.progress.log(f"resuming: trials {recovered} were cut off; they are marked FAIL and run again")
        c = self.config
        measured_cores = c.target.measured_cores() if c.target.device == "cpu" else ()
        self.executor = RayExecutor(c.address, c.trial_cpus(), c.trial_gpus(), measured_cores)
        try:
            with self.stop:
                try:
                    self.planning.make(self.executor.probe)
                    self._enqueue_start()
                    with self.timed("baseline"):
                        job = self.job(-1, baseline_recipe(c.seed, self.task))
                        timed = {m.key for m in c.measures()}
                        measure_baseline(self.executor, job, self.study, timed, self.stop.check, self.progress.log)
                    self.planning.prepare()
                    with self.timed("trials"):
                        self._loop()
                    with self.timed("outputs"):
                        job = self.job(-3, baseline_recipe(c.seed, self.task))
                        retime_selected(self.executor, job, self.study, self.stop.check, self.progress.log)
                except StopRequested:
                    self.progress.log("Ctrl-C: stopping; finished trials are kept")
                    self.executor.cancel_all(STOPPED)
                    # Every trial asked and not told: running, waiting on a twin, or asked a moment before the signal.
                    for number in list(self.tell.trials):
                        self.tell.failed(number, STOPPED, requeue=True)
        finally:
            self.executor.shutdown()
            self.progress.close()

    def plan_only(self) -> Plan:
        """The plan a search with these settings would make, its units timed in this process (`autocompress
        plan`): nothing is built but the teacher's fp32 export, in the output directory's cache."""
        from autocompress.engine.worker import probe_here

        return self.planning.make(probe_here)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Record what a phase took beside the plan's estimate (the study's `actuals`)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.actuals[phase] = round(self.actuals.get(phase, 0.0) + time.monotonic() - started, 1)
            self.study.set_user_attr("actuals", self.actuals)

    def _enqueue_start(self) -> None:
        if "start_enqueued" not in self.study.user_attrs:  # the space's `start:` recipes, once per study
            for params in start_params(self.space, self.info.layers):
                self.study.enqueue_trial(params, skip_if_exists=True)
            self.study.set_user_attr("start_enqueued", len(self.space.start))

    def job(self, number: int, recipe: Recipe, whole_machine: bool = False) -> TrialJob:
        c = self.config
        elastic = self.planning.elastic
        return TrialJob(
            number=number,
            recipe=recipe.to_dict(),
            model=c.model,
            train=c.train,
            dev=c.dev,
            dev_sentences=c.dev_sentences or self.space.evaluation.get("dev_sentences"),
            target=c.target.to_dict(),
            study_dir=str(c.out.resolve()),
            threads=(os.cpu_count() or 1) if whole_machine else max(1, int(c.trial_cpus())),
            train_device="cuda" if c.target.device == "cuda" and c.trial_gpus() > 0 else "cpu",
            elastic=elastic.to_dict() if elastic is not None else None,
            latency_reference=self.study.user_attrs.get("baseline", {}).get("latency_reference"),
        )

    def _loop(self) -> None:
        assert self.executor is not None
        budget, workers = self.config.budget, self.config.workers
        while True:
            self.stop.check()
            self._check_elsewhere()
            running, completed = len(self.executor.running) + len(self.elsewhere), records.completed(self.study)
            room = budget.trials is None or completed + records.in_flight(self.study) < budget.trials
            exhausted = self.duplicates_in_a_row >= EXHAUSTED_AFTER
            if room and not exhausted and running < workers and self.failed_in_a_row < 3 * workers + 5:
                fits, parent = self.planning.admit()
                if fits:
                    self._ask_and_submit(parent)
                    continue
            if exhausted and running == 0:
                self.progress.log(
                    f"the space looks exhausted: the last {EXHAUSTED_AFTER} suggestions repeated measured recipes"
                )
            if running == 0:
                break
            if self.planning.overdue():
                self._stop_running("the budget's time ran out while it ran; it runs again when the search resumes")
                break
            for finished in self.executor.collect(1.0, self.config.trial_timeout):
                self._tell(finished)
            self.progress.update(self.study, running=len(self.executor.running))
        if self.failed_in_a_row >= 3 * workers + 5 or (self.failed_in_a_row and not records.completed(self.study)):
            failed = self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            raise RunFailed(
                f"stopped: the last {self.failed_in_a_row} trials failed"
                + (" and no trial was measured" if not records.completed(self.study) else "")
                + f" (the latest: {records.reason(failed[-1]) if failed else '?'}); every trial's reason is in "
                f"{self.config.out / 'trials.csv'} (fail_reason)"
            )

    def _stop_running(self, reason: str) -> None:
        assert self.executor is not None
        self.progress.log(f"the budget's time is up: stopping {len(self.executor.running)} running trial(s)")
        self.executor.cancel_all(reason)
        for number in list(self.tell.trials):
            self.tell.failed(number, reason, requeue=True)

    def _ask_and_submit(self, parent: optuna.trial.FrozenTrial | None) -> None:
        assert self.executor is not None
        if parent is not None:  # trained on to the next rung: the same parameters, continued from its state
            rung = parent.user_attrs.get("rung", 0) + 1
            self.study.enqueue_trial(parent.params, user_attrs={"rung": rung, "parent": parent.number})
        trial = self.study.ask()
        self.tell.trials[trial.number] = trial
        trial.set_user_attr("driver", {"host": socket.gethostname(), "pid": os.getpid()})
        if not self.reseeded:
            # The sampler's random stream starts from the seed plus this driver's first trial number: a search run
            # alone from scratch is the seed's, and a resumed search or a second driver on the same study does not
            # replay the suggestions already made.
            self.study.sampler = make_sampler(self.config.sampler, self.config.seed + trial.number)
            self.reseeded = True
        c = self.config
        recipe = suggest_recipe(
            trial, self.space, self.info.layers, c.target.device, self.info.family, seed=c.seed, task=self.task
        )
        recipe = at_rung(recipe, self.space.fidelity, trial.user_attrs.get("rung", 0))
        trial.set_user_attr("recipe_id", recipe.id)
        trial.set_user_attr("recipe", recipe.to_dict())
        teacher = recipe.id == self.tell.baseline["recipe_id"]
        measured, cut = records.measured(self.study, recipe.id), records.cut(self.study, recipe.id)
        failed = records.failed(self.study, recipe.id)
        repeated = teacher or measured is not None or failed is not None or cut is not None
        self.duplicates_in_a_row = self.duplicates_in_a_row + 1 if repeated else 0
        claimed = records.claimed_elsewhere(
            self.study, recipe.id, trial.number, self.tell.trials, set(self.elsewhere.values())
        )
        if teacher:
            self.tell.teacher(trial)
        elif measured is not None:
            self.tell.duplicate(trial, measured)
        elif cut is not None:  # as slow as before
            self.tell.cut_twin(trial, cut)
        elif failed is not None:  # the same error again: recorded, not re-run
            self.tell.failed(
                trial.number, f"same recipe as trial {failed.number}, which failed: {records.reason(failed)}"
            )
        elif recipe.id in self.waiting:
            self.waiting[recipe.id].append(trial.number)
        elif claimed is not None:  # another driver on this study measures it: wait for its trial
            self.elsewhere[trial.number] = claimed
        elif records.over_budget(self.study, trial.number, c.budget.trials):
            self.tell.skipped(trial.number)
        else:
            self.waiting[recipe.id] = []
            self.executor.submit(self.job(trial.number, recipe))
        self.progress.update(self.study, running=len(self.executor.running))

    def _check_elsewhere(self) -> None:
        """Trials waiting on another driver's measurement: take its values when it completes; measure the recipe
        here when that trial was cut off or its driver on this machine is gone; record its failure otherwise."""
        assert self.executor is not None
        for number, other in list(self.elsewhere.items()):
            theirs = self.study.trials[other]
            if theirs.state == TrialState.RUNNING and not records.driver_gone(theirs):
                continue
            del self.elsewhere[number]
            if theirs.state == TrialState.COMPLETE:
                self.tell.duplicate(self.tell.trials[number], theirs)
            elif theirs.state == TrialState.PRUNED and "cut_short" in theirs.user_attrs:
                self.tell.cut_twin(self.tell.trials[number], theirs)
            elif theirs.state == TrialState.FAIL and "traceback" in theirs.user_attrs:
                self.tell.failed(number, f"same recipe as trial {other}, which failed: {records.reason(theirs)}")
            else:
                recipe = Recipe.from_dict(self.tell.trials[number].user_attrs["recipe"])
                self.waiting.setdefault(recipe.id, [])
                self.executor.submit(self.job(number, recipe))

    def _tell(self, finished: Finished) -> None:
        number = finished.job.number
        trial = self.tell.trials.pop(number)
        recipe = Recipe.from_dict(finished.job.recipe)
        waiters = self.waiting.pop(recipe.id, [])
        if finished.outcome is None:
            self.failed_in_a_row += 1
            self.tell.failed(number, finished.reason or "failed", detail=finished.detail)
            for waiter in waiters:
                self.tell.failed(waiter, f"same recipe as trial {number}, which failed: {finished.reason}")
            return
        self.failed_in_a_row = 0
        for key, value in records.outcome_attrs(recipe, finished).items():
            trial.set_user_attr(key, value)
        if finished.outcome.cut is not None:
            self.tell.cut(trial, finished.outcome.cut)
            for waiter in waiters:
                self.tell.cut_twin(self.tell.trials[waiter], self.study.trials[number])
            return
        self.tell.measured(trial, finished.outcome.values)
        self.progress.log(f"trial {number}: " + records.describe(finished.outcome.values) + self.planning.eta())
        timing: dict[str, Any] = finished.outcome.measurements.get("latency_p50_ms", {}).get("details", {})
        if timing.get("disturbed"):
            self.progress.log(
                f"trial {number}: warning: its timing stayed disturbed after {len(timing['attempts'])} attempts "
                f"(per-sentence spread {timing['per_sentence_cv']:.2f}): another process loads the machine"
            )
        for waiter in waiters:
            self.tell.duplicate(self.tell.trials[waiter], self.study.trials[number])

    def whole_machine_job(self, number: int) -> TrialJob:
        """A job of the teacher's baseline recipe with every core: the plan's timings and the one-off work."""
        return self.job(number, baseline_recipe(self.config.seed, self.task), whole_machine=True)
