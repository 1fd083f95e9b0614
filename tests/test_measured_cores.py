"""While a search runs, nothing of it but a measurement may run on the measured cores: Ray's daemons and the driver
keep off them, trials widen back to every core. Real local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from autocompress.engine.executor import RayExecutor
from autocompress.engine.worker import use_trial_cores

CORES = sorted(os.sched_getaffinity(0))
pytestmark = pytest.mark.skipif(len(CORES) < 2, reason="reserving a measured core needs at least two cores")


def _raylets() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and "raylet" in (entry / "cmdline").read_bytes().decode(errors="ignore"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_ray_daemons_keep_off_the_measured_core_and_trials_widen_back() -> None:
    measured = (CORES[-1],)
    before = _raylets()
    executor = RayExecutor(None, 1, 0, measured)
    try:
        assert os.sched_getaffinity(0) == set(CORES) - set(measured)
        raylets = [pid for pid in _raylets() if pid not in before]
        assert raylets, "the local Ray started no raylet"
        assert all(os.sched_getaffinity(pid) == set(CORES) - set(measured) for pid in raylets)

        @ray.remote(num_cpus=1)
        def trial_cores() -> tuple[list[int], list[int]]:
            started_with = sorted(os.sched_getaffinity(0))
            use_trial_cores()
            return started_with, sorted(os.sched_getaffinity(0))

        started_with, widened = ray.get(trial_cores.remote())
        assert measured[0] not in started_with
        assert widened == CORES
    finally:
        executor.shutdown()
    assert os.sched_getaffinity(0) == set(CORES)
