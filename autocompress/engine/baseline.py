"""The teacher in the search's own harness: its fp32 ONNX measured once per study before any trial (the point the
constraint, the ratios and the cut-short timing refer to), and timed again beside the selected model at the end."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from autocompress.engine.executor import Finished, RayExecutor
from autocompress.engine.records import describe, outcome_attrs
from autocompress.engine.study import RETIMED
from autocompress.engine.worker import TrialJob
from autocompress.errors import RunFailed
from autocompress.passes.recipe import Recipe
from autocompress.task import Task

RETIME_ROUNDS = 3  # rounds of the final side-by-side timing of the teacher and the selected model


def baseline_recipe(seed: int, task: Task | None = None) -> Recipe:
    """The teacher as it is, exported fp32 for onnxruntime."""
    return Recipe.make([("precision", {"runtime": "onnxruntime", "dtype": "fp32"})], seed=seed, task=task)


def measure_baseline(
    executor: RayExecutor, job: TrialJob, study: optuna.Study, timed: set[str], check: Callable[[], None], log: Any
) -> None:
    """Measure the teacher (job: the baseline recipe's) and keep it as the study's `baseline`, with the latency
    reference every trial's timing is held against when latency (`timed` holds the measured keys) is an objective.
    Once per study: a second driver started beside the first waits for its baseline (a file lock in the shared
    output directory) and takes it."""
    out = Path(job.study_dir)
    with file_lock(out / ".baseline.lock", check):
        if "baseline" in study.user_attrs:
            return
        log("measuring the teacher (fp32 ONNX) as the baseline")
        executor.submit(job)
        done: list[Finished] = []
        while not done:
            check()
            # No --trial-timeout here: it is meant to cut a recipe that runs long, and every ratio rests on this one.
            done = executor.collect(1.0, None)
        finished = done[0]
        if finished.outcome is None:
            failure = out / "failure.log"
            failure.write_text(
                f"the teacher's baseline measurement failed: {finished.reason}\n\n{finished.detail or ''}"
            )
            raise RunFailed(f"the teacher's baseline measurement failed ({finished.reason}); details in {failure}")
        from autocompress.evaluate.latency import LatencyReference

        baseline = outcome_attrs(Recipe.from_dict(job.recipe), finished)
        reference = LatencyReference.from_details(finished.outcome.measurements["latency_p50_ms"]["details"])
        if reference is not None and "latency_p50_ms" in timed:
            # what every trial's timing is held against: a candidate slower than the teacher is cut short
            baseline["latency_reference"] = reference.to_dict()
        study.set_user_attr("baseline", baseline)
        log("baseline: " + describe(finished.outcome.values))


def retime_selected(
    executor: RayExecutor, job: TrialJob, study: optuna.Study, check: Callable[[], None], log: Any
) -> None:
    """The teacher timed again beside the model the search selects, interleaved (RETIME_ROUNDS rounds, ABBA): the
    ratios printed at the end rest on readings taken side by side, not on the baseline's one early reading."""
    from autocompress.engine.view import study_view

    selected = study_view(study).selected
    if selected is None:
        return
    log(f"timing the teacher again beside trial {selected.number} ({RETIME_ROUNDS} rounds, interleaved)")
    artifacts = [study.user_attrs["baseline"]["artifact"], selected.user_attrs["artifact"]]
    rounds = executor.compare(job, artifacts, RETIME_ROUNDS, check)
    teacher, model = (_medians(rounds[artifact]) for artifact in artifacts)
    study.set_user_attr(
        RETIMED, {"trial": selected.number, "rounds": RETIME_ROUNDS, "teacher": teacher, "model": model}
    )


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.median([r[key] for r in rounds])), 3) for key in rounds[0]}


@contextmanager
def file_lock(path: Path, waiting: Callable[[], None]) -> Iterator[None]:
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
