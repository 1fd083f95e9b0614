"""The search loop. The driver alone asks and tells; workers only run TrialJobs.

ask → define-by-run recipe → (already measured? tell the same values; being measured? wait for it) → submit → collect
→ tell, with the recipe, signatures, artifact, durations or the failure reason as the trial's user attributes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from autocompress.engine.config import SearchConfig
from autocompress.engine.executor import Finished, RayExecutor
from autocompress.engine.plan import Plan
from autocompress.engine.progress import Progress
from autocompress.engine.stop import StopRequested, StopSignals
from autocompress.engine.study import (
    CONSTRAINT,
    RETIMED,
    alive,
    is_measured,
    make_sampler,
    pareto_ranks,
    recover_cut_off,
)
from autocompress.engine.worker import TrialJob
from autocompress.errors import RunFailed, UserInputError
from autocompress.recipe import Recipe
from autocompress.space import SearchSpace, at_rung, start_params, suggest_recipe, teacher_only
from autocompress.task import Task


def baseline_recipe(seed: int, task: Task | None = None) -> Recipe:
    """The teacher as it is, exported fp32 for onnxruntime."""
    return Recipe.make([("precision", {"runtime": "onnxruntime", "dtype": "fp32"})], seed=seed, task=task)


RETIME_ROUNDS = 3  # rounds of the final side-by-side timing of the teacher and the selected model
EXHAUSTED_AFTER = 30  # suggestions in a row that repeat measured recipes: the sampler has nothing new to offer
STOPPED = "stopped by the user (Ctrl-C); it is run again when the search resumes"


@dataclass(frozen=True)
class ModelInfo:
    family: str
    layers: dict[str, int]


def model_info(spec: str) -> ModelInfo:
    """What the space needs from the teacher, read from its config (the weights stay unloaded in the driver)."""
    from autocompress.model.load import read_config, resolve_model_dir

    config = read_config(resolve_model_dir(spec))
    encoder = getattr(config, "encoder_layers", None) or config.num_layers
    decoder = getattr(config, "decoder_layers", None) or getattr(config, "num_decoder_layers", None) or encoder
    return ModelInfo(config.model_type, {"encoder": int(encoder), "decoder": int(decoder)})


def check_space(space: SearchSpace, info: ModelInfo, device: str) -> None:
    """Draw recipes from the space before any work, so that an impossible space fails now, with its reason."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(32):
        suggest_recipe(probe.ask(), space, info.layers, device, info.family)


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
    trials: dict[int, optuna.Trial] = field(default_factory=dict)
    failed_in_a_row: int = 0
    duplicates_in_a_row: int = 0
    stop: StopSignals = field(default_factory=StopSignals)
    elastic_steps: int | None = None  # the elastic student's steps when the plan cut them to the budget
    plan: Plan | None = None
    actuals: dict[str, float] = field(default_factory=dict)  # phase → seconds it took (the plan's estimates beside)

    def run(self) -> None:
        recorded = self.study.get_trials(deepcopy=False)
        if recorded:
            measured = sum(1 for t in recorded if is_measured(t))
            self.progress.log(f"resuming study {self.study.study_name}: {len(recorded)} trials, {measured} measured")
        recovered = recover_cut_off(self.study)
        if recovered:
            self.progress.log(f"resuming: trials {recovered} were cut off; they are marked FAIL and run again")
        c = self.config
        measured = c.target.measured_cores() if c.target.device == "cpu" else ()
        self.executor = RayExecutor(c.address, c.trial_cpus(), c.trial_gpus(), measured)
        try:
            with self.stop:
                try:
                    self._plan()
                    self._enqueue_start()
                    with self._timed("baseline"):
                        self._baseline()
                    self._prepare()
                    with self._timed("trials"):
                        self._loop()
                    with self._timed("outputs"):
                        self._retime_selected()
                except StopRequested:
                    self.progress.log("Ctrl-C: stopping; finished trials are kept")
                    self.executor.cancel_all(STOPPED)
                    # Every trial asked and not told: running, waiting on a twin, or asked a moment before the signal.
                    for number in list(self.trials):
                        self._tell_failed(number, STOPPED, requeue=True)
        finally:
            self.executor.shutdown()
            self.progress.close()

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
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

    def _plan(self, probe: Callable[..., dict[str, Any]] | None = None) -> Plan:
        """Time a few units of every phase on this machine (on Ray, or with `probe` in this process), then plan the
        run to its budget (engine.plan); printed and kept in the study. A resumed study keeps the elastic steps its
        first plan cut."""
        from autocompress.engine.plan import make_plan
        from autocompress.teacher.prepare import needed

        if probe is None:
            assert self.executor is not None
            probe = self.executor.probe
        earlier = self.study.user_attrs.get("plan")
        if earlier and earlier.get("elastic_steps"):
            self.elastic_steps = int(earlier["elastic_steps"])
        if earlier and earlier.get("precision_only"):
            self.space = teacher_only(self.space)
        self.progress.log("timing a few units of each phase on this machine, to plan the run")
        job = dataclasses.replace(
            self.job(-4, baseline_recipe(self.config.seed, self.task)), threads=os.cpu_count() or 1
        )
        probed = probe(job, needed(self.space), self.train_tokens, self.stop.check)
        budget = self.config.budget
        plan = make_plan(
            probed["units"],
            tuple(probed["missing"]),
            self.config.target.to_dict(),
            int(probed["units"]["dev_sentences"]),
            self.rungs,
            self.train_tokens,
            self.elastic.to_dict() if self.elastic is not None else None,
            budget.seconds,
            budget.trials,
            time.monotonic() - self.started,
            "pruned" in self.space.students,
            self.space.fidelity.eta if self.space.fidelity is not None else 4,
        )
        if plan.elastic_steps is not None:
            self.elastic_steps = plan.elastic_steps
        if plan.precision_only:
            self.space = teacher_only(self.space)
        self.plan = plan
        self.actuals["probe"] = plan.estimates["probe"]
        self.study.set_user_attr("plan", plan.to_dict())
        for line in plan.lines():
            self.progress.log(line)
        return plan

    def plan_only(self) -> Plan:
        """The plan a search with these settings would make, its units timed in this process (`autocompress
        plan`): nothing is built but the teacher's fp32 export, in the output directory's cache."""
        from autocompress.engine.worker import probe_here

        return self._plan(probe_here)

    @property
    def rungs(self) -> tuple[int, ...]:
        """A student's training steps at each rung (one entry without rungs: the distillation's steps)."""
        if self.space.fidelity is not None:
            return self.space.fidelity.rungs
        steps = self.space.dimension("distill", "steps")
        return (int(max(steps.values)) if steps is not None else 400,)

    @property
    def train_tokens(self) -> int:
        tokens = self.space.dimension("distill", "max_tokens")
        return int(max(tokens.values)) if tokens is not None else 1500

    def job(self, number: int, recipe: Recipe) -> TrialJob:
        c = self.config
        return TrialJob(
            number=number,
            recipe=recipe.to_dict(),
            model=c.model,
            train=c.train,
            dev=c.dev,
            dev_sentences=c.dev_sentences or self.space.evaluation.get("dev_sentences"),
            target=c.target.to_dict(),
            study_dir=str(c.out.resolve()),
            threads=max(1, int(c.trial_cpus())),
            train_device="cuda" if c.target.device == "cuda" and c.trial_gpus() > 0 else "cpu",
            elastic=self.elastic.to_dict() if self.elastic is not None else None,
            latency_reference=self.study.user_attrs.get("baseline", {}).get("latency_reference"),
        )

    @property
    def elastic(self) -> Any:
        """The elastic student's settings, when the space lets students start from one (teacher.elastic)."""
        from autocompress.teacher.elastic import settings_from_space, uses_elastic

        if not uses_elastic(self.space) or "pruned" not in self.space.students:
            return None
        settings = settings_from_space(self.space, self.info.layers)
        return settings if self.elastic_steps is None else settings.cut_to(self.elastic_steps)

    def _prepare(self) -> None:
        """What the trials will ask of the teacher (importance, its translations of the training data), built once
        with the whole machine before they start, or found in the cache."""
        from autocompress.teacher.prepare import needed

        artifacts = needed(self.space)
        if not artifacts:
            return
        assert self.executor is not None
        self.progress.log(f"preparing the teacher's {', '.join(artifacts)} (built once, then cached)")
        job = dataclasses.replace(
            self.job(-2, baseline_recipe(self.config.seed, self.task)), threads=os.cpu_count() or 1
        )
        started, said = time.monotonic(), [time.monotonic()]
        planned = self.plan.prepare_s if self.plan is not None else 0.0

        def waiting() -> None:  # the stop check, and a line a minute: the one-off work can take long
            self.stop.check()
            if time.monotonic() - said[0] >= 60:
                said[0] = time.monotonic()
                of = f" of ≈ {planned / 60:.1f} planned" if planned else ""
                self.progress.log(f"  preparing: {(said[0] - started) / 60:.0f} min{of}")

        for name, entry in self.executor.prepare(job, artifacts, waiting).items():
            state = "cached" if entry.get("hit") else f"built in {entry.get('seconds', 0):.0f} s"
            self.progress.log(f"  {name}: {state}")
            if not entry.get("hit"):
                self.actuals[f"prepare:{name}"] = round(float(entry.get("seconds", 0.0)), 1)
        self.actuals["prepare"] = round(time.monotonic() - started, 1)
        self.study.set_user_attr("actuals", self.actuals)

    def _baseline(self) -> None:
        """The teacher measured in the same harness (fp32 ONNX): the point the constraints and ratios refer to.
        Measured once per study: a second driver started beside the first waits for its baseline (a file lock in
        the shared output directory) and takes it."""
        with _file_lock(self.config.out / ".baseline.lock", self.stop.check):
            if "baseline" not in self.study.user_attrs:
                self._measure_baseline()

    def _measure_baseline(self) -> None:
        assert self.executor is not None
        self.progress.log("measuring the teacher (fp32 ONNX) as the baseline")
        recipe = baseline_recipe(self.config.seed, self.task)
        self.executor.submit(self.job(-1, recipe))
        done: list[Finished] = []
        while not done:
            self.stop.check()
            # No --trial-timeout here: it is meant to cut a recipe that runs long, and every ratio rests on this one.
            done = self.executor.collect(1.0, None)
        finished = done[0]
        if finished.outcome is None:
            log = self.config.out / "failure.log"
            log.write_text(f"the teacher's baseline measurement failed: {finished.reason}\n\n{finished.detail or ''}")
            raise RunFailed(f"the teacher's baseline measurement failed ({finished.reason}); details in {log}")
        from autocompress.evaluate.latency import LatencyReference

        baseline = _attrs(recipe, finished)
        reference = LatencyReference.from_details(finished.outcome.measurements["latency_p50_ms"]["details"])
        if reference is not None and "latency_p50_ms" in {m.key for m in self.config.measures()}:
            # what every trial's timing is held against: a candidate slower than the teacher is cut short
            baseline["latency_reference"] = reference.to_dict()
        self.study.set_user_attr("baseline", baseline)
        self.progress.log("baseline: " + _describe(finished.outcome.values))

    def _retime_selected(self) -> None:
        """The teacher timed again beside the model the search selects, interleaved (RETIME_ROUNDS rounds, ABBA): the
        ratios printed at the end rest on readings taken side by side, not on the baseline's one early reading."""
        from autocompress.report.view import study_view

        assert self.executor is not None
        selected = study_view(self.study).selected
        if selected is None:
            return
        self.progress.log(
            f"timing the teacher again beside trial {selected.number} ({RETIME_ROUNDS} rounds, interleaved)"
        )
        artifacts = [self.baseline["artifact"], selected.user_attrs["artifact"]]
        job = self.job(-3, baseline_recipe(self.config.seed, self.task))
        rounds = self.executor.compare(job, artifacts, RETIME_ROUNDS, self.stop.check)
        teacher, model = (_medians(rounds[artifact]) for artifact in artifacts)
        self.study.set_user_attr(
            RETIMED, {"trial": selected.number, "rounds": RETIME_ROUNDS, "teacher": teacher, "model": model}
        )

    @property
    def baseline(self) -> dict[str, Any]:
        return self.study.user_attrs["baseline"]

    def completed(self) -> int:
        return sum(1 for t in self.study.get_trials(deepcopy=False) if is_measured(t))

    def _loop(self) -> None:
        assert self.executor is not None
        budget, workers = self.config.budget, self.config.workers
        while True:
            self.stop.check()
            self._check_elsewhere()
            running, completed = len(self.executor.running) + len(self.elsewhere), self.completed()
            room = budget.trials is None or completed + self.in_flight() < budget.trials
            exhausted = self.duplicates_in_a_row >= EXHAUSTED_AFTER
            if room and not exhausted and running < workers and self.failed_in_a_row < 3 * workers + 5:
                fits, parent = self._next()
                if fits:
                    self._ask_and_submit(parent)
                    continue
            if exhausted and running == 0:
                self.progress.log(
                    f"the space looks exhausted: the last {EXHAUSTED_AFTER} suggestions repeated measured recipes"
                )
            if running == 0:
                break
            if self._overdue():
                self._stop_running("the budget's time ran out while it ran; it runs again when the search resumes")
                break
            for finished in self.executor.collect(1.0, self.config.trial_timeout):
                self._tell(finished)
            self.progress.update(self.study, running=len(self.executor.running))
        if self.failed_in_a_row >= 3 * workers + 5 or (self.failed_in_a_row and not self.completed()):
            failed = self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            raise RunFailed(
                f"stopped: the last {self.failed_in_a_row} trials failed"
                + (" and no trial was measured" if not self.completed() else "")
                + f" (the latest: {_reason(failed[-1]) if failed else '?'}); every trial's reason is in "
                f"{self.config.out / 'trials.csv'} (fail_reason)"
            )

    def _left(self) -> float | None:
        """Seconds of the wall-time budget left for trials (the final outputs' estimate kept back); None: no limit."""
        seconds = self.config.budget.seconds
        if seconds is None:
            return None
        outputs = self.plan.estimates["outputs"] if self.plan is not None else 0.0
        return self.started + seconds - outputs - time.monotonic()

    def _next(self) -> tuple[bool, optuna.trial.FrozenTrial | None]:
        """(whether another trial fits the budget's time, the student to promote if its rung fits too): a promotion
        whose training would overrun the budget gives way to a new trial at the first rung."""
        parent = self._promotion()
        left = self._left()
        if left is None:
            return True, parent
        if parent is not None and self.trial_seconds(parent.user_attrs.get("rung", 0) + 1) <= left:
            return True, parent
        return self.trial_seconds(0) <= left, None

    def trial_seconds(self, rung: int) -> float:
        """What a trial at this rung should take: the median of those measured at it, else the plan's estimate."""
        taken = [
            t.user_attrs["phases"]["total"]
            for t in self.study.get_trials(deepcopy=False)
            if (is_measured(t) or "cut_short" in t.user_attrs)
            and "duplicate_of" not in t.user_attrs
            and t.user_attrs.get("rung", 0) == rung
            and "total" in t.user_attrs.get("phases", {})
        ]
        if taken:
            return float(np.median(taken))
        if self.plan is None:
            return 0.0
        return self.plan.per_trial[min(rung, len(self.plan.per_trial) - 1)]

    def _eta(self) -> str:
        """Where the run stands against its plan, for the progress lines."""
        elapsed = time.monotonic() - self.started
        if self.config.budget.seconds is not None:
            return f" [{elapsed / 60:.1f} of {self.config.budget.seconds / 60:g} min]"
        left = max(0, (self.config.budget.trials or 0) - self.completed()) * self.trial_seconds(0)
        outputs = self.plan.estimates["outputs"] if self.plan is not None else 0.0
        return f" [{elapsed / 60:.1f} min; ≈ {(left + outputs) / 60:.1f} min left]"

    def _overdue(self) -> bool:
        """Running trials are past the budget by more than its slack (5 %, at least one minute)."""
        left, seconds = self._left(), self.config.budget.seconds
        return left is not None and seconds is not None and -left > max(60.0, 0.05 * seconds)

    def _stop_running(self, reason: str) -> None:
        assert self.executor is not None
        self.progress.log(f"the budget's time is up: stopping {len(self.executor.running)} running trial(s)")
        self.executor.cancel_all(reason)
        for number in list(self.trials):
            self._tell_failed(number, reason, requeue=True)

    def in_flight(self) -> int:
        """Recipes being measured now, by this driver or another one on the same study (the budget is the study's)."""
        return _occupied(self.study.get_trials(deepcopy=False)) - self.completed()

    def _ask_and_submit(self, parent: optuna.trial.FrozenTrial | None) -> None:
        assert self.executor is not None
        if parent is not None:  # trained on to the next rung: the same parameters, continued from its state
            rung = parent.user_attrs.get("rung", 0) + 1
            self.study.enqueue_trial(parent.params, user_attrs={"rung": rung, "parent": parent.number})
        trial = self.study.ask()
        self.trials[trial.number] = trial
        trial.set_user_attr("driver", {"host": socket.gethostname(), "pid": os.getpid()})
        if not self.reseeded:
            # The sampler's random stream starts from the seed plus this driver's first trial number: a search run
            # alone from scratch is the seed's, and a resumed search or a second driver on the same study does not
            # replay the suggestions already made.
            self.study.sampler = make_sampler(self.config.sampler, self.config.seed + trial.number)
            self.reseeded = True
        recipe = suggest_recipe(
            trial,
            self.space,
            self.info.layers,
            self.config.target.device,
            self.info.family,
            seed=self.config.seed,
            task=self.task,
        )
        recipe = at_rung(recipe, self.space.fidelity, trial.user_attrs.get("rung", 0))
        trial.set_user_attr("recipe_id", recipe.id)
        trial.set_user_attr("recipe", recipe.to_dict())
        measured, failed, cut = self._measured(recipe.id), self._failed(recipe.id), self._cut(recipe.id)
        repeated = measured is not None or failed is not None or cut is not None
        repeated = repeated or recipe.id == self.baseline["recipe_id"]
        self.duplicates_in_a_row = self.duplicates_in_a_row + 1 if repeated else 0
        claimed = self._claimed_elsewhere(recipe.id, trial.number)
        if recipe.id == self.baseline["recipe_id"]:
            self._tell_baseline(trial)
        elif measured is not None:
            self._tell_duplicate(trial, measured)
        elif cut is not None:  # as slow as before
            self._tell_cut_twin(trial, cut)
        elif failed is not None:  # the same error again: recorded, not re-run
            self._tell_failed(trial.number, f"same recipe as trial {failed.number}, which failed: {_reason(failed)}")
        elif recipe.id in self.waiting:
            self.waiting[recipe.id].append(trial.number)
        elif claimed is not None:  # another driver on this study measures it: wait for its trial
            self.elsewhere[trial.number] = claimed
        elif self._over_budget(trial.number):
            self._tell_skipped(trial.number)
        else:
            self.waiting[recipe.id] = []
            self.executor.submit(self.job(trial.number, recipe))
        self.progress.update(self.study, running=len(self.executor.running))

    def _claimed_elsewhere(self, recipe_id: str, number: int) -> int | None:
        """An earlier RUNNING trial of another driver with the same recipe: the recipe id is set on a trial before it
        is submitted, so of two drivers that drew the same recipe, the later trial sees the earlier and waits."""
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number < number and t.number not in self.trials and t.user_attrs.get("recipe_id") == recipe_id:
                if "duplicate_of" not in t.user_attrs and t.number not in self.elsewhere.values():
                    return t.number
        return None

    def _over_budget(self, number: int) -> bool:
        """Whether trials asked before this one (by any driver) already fill a trial budget: two drivers that
        checked the room at the same moment do not both measure the last trial."""
        budget = self.config.budget.trials
        earlier = [t for t in self.study.get_trials(deepcopy=False) if t.number < number]
        return budget is not None and _occupied(earlier) >= budget

    def _tell_skipped(self, number: int) -> None:
        trial = self.trials.pop(number)
        trial.set_user_attr("skipped", "the trial budget was filled by trials asked before it (another driver)")
        self.study.tell(trial, state=TrialState.PRUNED)

    def _check_elsewhere(self) -> None:
        """Trials waiting on another driver's measurement: take its values when it completes; measure the recipe
        here when that trial was cut off or its driver on this machine is gone; record its failure otherwise."""
        assert self.executor is not None
        for number, other in list(self.elsewhere.items()):
            theirs = self.study.trials[other]
            if theirs.state == TrialState.RUNNING and not _driver_gone(theirs):
                continue
            del self.elsewhere[number]
            if theirs.state == TrialState.COMPLETE:
                self._tell_duplicate(self.trials[number], theirs)
            elif theirs.state == TrialState.PRUNED and "cut_short" in theirs.user_attrs:
                self._tell_cut_twin(self.trials[number], theirs)
            elif theirs.state == TrialState.FAIL and "traceback" in theirs.user_attrs:
                self._tell_failed(number, f"same recipe as trial {other}, which failed: {_reason(theirs)}")
            else:
                recipe = Recipe.from_dict(self.trials[number].user_attrs["recipe"])
                self.waiting.setdefault(recipe.id, [])
                self.executor.submit(self.job(number, recipe))

    def _failed(self, recipe_id: str) -> optuna.trial.FrozenTrial | None:
        """A trial of this recipe whose worker raised: the same recipe raises again (a timeout, a crash, a cut-off
        or a stop may not, so those are run again)."""
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if t.user_attrs.get("recipe_id") == recipe_id and "traceback" in t.user_attrs:
                return t
        return None

    def _promotion(self) -> optuna.trial.FrozenTrial | None:
        """Asynchronous successive halving over the rungs: of the students measured at a rung, the best 1/eta (by
        Pareto rank of their objectives, then BLEU) go on to the next, as soon as enough have been measured there."""
        fidelity = self.space.fidelity
        if fidelity is None:
            return None
        trials = self.study.get_trials(deepcopy=False)
        promoted = {t.user_attrs["parent"] for t in trials if "parent" in t.user_attrs}
        directions = [d.name.lower() for d in self.study.directions]
        for rung in reversed(range(len(fidelity.rungs) - 1)):
            done = [
                t
                for t in trials
                if is_measured(t) and t.user_attrs.get("rung", 0) == rung and _trains(t.user_attrs.get("recipe", {}))
            ]
            waiting = [t for t in done if t.number not in promoted]
            if waiting and len(done) // fidelity.eta > len(done) - len(waiting):
                ranks = pareto_ranks([list(t.values) for t in waiting], directions)
                best = min(zip(ranks, waiting, strict=True), key=lambda r: (r[0], -r[1].user_attrs["values"]["bleu"]))
                return best[1]
        return None

    def _cut(self, recipe_id: str) -> optuna.trial.FrozenTrial | None:
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
            if t.user_attrs.get("recipe_id") == recipe_id and "cut_short" in t.user_attrs:
                return t
        return None

    def _measured(self, recipe_id: str) -> optuna.trial.FrozenTrial | None:
        for t in self.study.get_trials(deepcopy=False):
            if t.user_attrs.get("recipe_id") == recipe_id and is_measured(t):
                return t
        return None

    def _tell(self, finished: Finished) -> None:
        number = finished.job.number
        trial = self.trials.pop(number)
        recipe_id = Recipe.from_dict(finished.job.recipe).id
        waiters = self.waiting.pop(recipe_id, [])
        if finished.outcome is None:
            self.failed_in_a_row += 1
            self._tell_failed(number, finished.reason or "failed", detail=finished.detail)
            for waiter in waiters:
                self._tell_failed(waiter, f"same recipe as trial {number}, which failed: {finished.reason}")
            return
        self.failed_in_a_row = 0
        for key, value in _attrs(Recipe.from_dict(finished.job.recipe), finished).items():
            trial.set_user_attr(key, value)
        if finished.outcome.cut is not None:
            self._tell_cut(trial, finished.outcome.cut, waiters)
            return
        self._constrain(trial, finished.outcome.values)
        self.study.tell(trial, self.values(finished.outcome.values))
        self.progress.log(f"trial {number}: " + _describe(finished.outcome.values) + self._eta())
        timing = finished.outcome.measurements.get("latency_p50_ms", {}).get("details", {})
        if timing.get("disturbed"):
            self.progress.log(
                f"trial {number}: warning: its timing stayed disturbed after {len(timing['attempts'])} attempts "
                f"(per-sentence spread {timing['per_sentence_cv']:.2f}): another process loads the machine"
            )
        measured = self.study.trials[number]
        for waiter in waiters:
            self._tell_duplicate(self.trials.pop(waiter), measured)

    def _tell_cut(self, trial: optuna.Trial, cut: dict[str, Any], waiters: list[int]) -> None:
        """A candidate whose measuring stopped early (slower than the teacher): kept with what was measured and why,
        as a pruned trial, so it is never a front member; its twins take the same verdict."""
        trial.set_user_attr("cut_short", cut)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.progress.log(f"trial {trial.number}: cut short, {cut['reason']}; its BLEU was not decoded")
        for waiter in waiters:
            self._tell_cut_twin(self.trials.pop(waiter), self.study.trials[trial.number])

    def _tell_cut_twin(self, trial: optuna.Trial, cut: optuna.trial.FrozenTrial) -> None:
        for key, value in cut.user_attrs.items():
            if key not in ("driver", "duplicate_of"):
                trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", cut.number)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.trials.pop(trial.number, None)
        self.progress.log(f"trial {trial.number}: the recipe of trial {cut.number}, cut short before")

    def _tell_duplicate(self, trial: optuna.Trial, measured: optuna.trial.FrozenTrial) -> None:
        """A recipe already measured is not recomputed: the trial takes that trial's values and lineage."""
        for key, value in measured.user_attrs.items():
            if key not in ("driver", "duplicate_of"):
                trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", measured.number)
        for key, value in measured.constraints.items():
            trial.set_constraint(key, value)
        self.study.tell(trial, measured.values)
        self.trials.pop(trial.number, None)
        self.progress.log(f"trial {trial.number}: the recipe of trial {measured.number}, its measurement reused")

    def _tell_baseline(self, trial: optuna.Trial) -> None:
        """The teacher's own recipe: measured at the start, so the trial takes the baseline's values."""
        for key, value in self.baseline.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", "baseline")
        self._constrain(trial, self.baseline["values"])
        self.study.tell(trial, self.values(self.baseline["values"]))
        self.trials.pop(trial.number, None)
        self.progress.log(f"trial {trial.number}: the teacher's own recipe, the baseline's measurement reused")

    def _tell_failed(self, number: int, reason: str, detail: str | None = None, requeue: bool = False) -> None:
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

    def _constrain(self, trial: optuna.Trial, measured: dict[str, float]) -> None:
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


def _attrs(recipe: Recipe, finished: Finished) -> dict[str, Any]:
    outcome = finished.outcome
    assert outcome is not None
    return {
        "recipe_id": recipe.id,
        "recipe": recipe.to_dict(),
        "values": outcome.values,
        "signatures": {name: m["signature"] for name, m in outcome.measurements.items()},
        "artifact": outcome.artifact,
        "phases": outcome.phases,
        "metrics": json.loads(json.dumps(outcome.metrics, default=str)),
        "worker": outcome.worker,
    }


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.median([r[key] for r in rounds])), 3) for key in rounds[0]}


def _occupied(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Measured recipes plus recipes being measured (twins waiting on one another count once)."""
    measured = {t.user_attrs.get("recipe_id") for t in trials if is_measured(t)}
    running = {
        t.user_attrs["recipe_id"]
        for t in trials
        if t.state == TrialState.RUNNING and "recipe_id" in t.user_attrs and "duplicate_of" not in t.user_attrs
    }
    return sum(1 for t in trials if is_measured(t)) + len(running - measured)


def _reason(trial: optuna.trial.FrozenTrial) -> str:
    return str(trial.user_attrs.get("fail_reason", "failed"))


def _driver_gone(trial: optuna.trial.FrozenTrial) -> bool:
    """The trial's driver ran on this machine and its process is gone (another machine's cannot be seen)."""
    driver = trial.user_attrs.get("driver", {})
    return driver.get("host") == socket.gethostname() and not alive(driver.get("pid"))


@contextmanager
def _file_lock(path: Path, waiting: Callable[[], None]) -> Iterator[None]:
    """An exclusive lock on a file, polled so that `waiting()` (the stop check) runs while another process holds it."""
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waiting()
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _trains(recipe: dict[str, Any]) -> bool:
    """Whether a recipe distils a student (what multi-fidelity rungs are about)."""
    return any(p["name"] == "distill" for p in recipe.get("passes", []))


def _describe(values: dict[str, float]) -> str:
    return (
        f"BLEU {values['bleu']:.2f}, chrF {values['chrf']:.2f}, p50 {values['latency_p50_ms']:.2f} ms, "
        f"peak RSS {values['peak_rss_mb']:.0f} MiB, size {values['size_mb']:.1f} MiB"
    )


def resolve_out(config: SearchConfig) -> Path:
    out = config.out.resolve()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file: give a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out
