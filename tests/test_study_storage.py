"""Study storage shared by drivers started at the same moment (the race CI once hit: "table studies already exists")."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from autocompress.engine.settings import SETTINGS_VERSION
from autocompress.engine.study import make_sampler, open_study, storage_url
from autocompress.evaluate.objectives import objectives

DRIVERS = 4


def _open(out: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue) -> None:
    barrier.wait()  # every process reaches the new file's creation together
    try:
        open_study(
            "s",
            storage_url(Path(out), None),
            objectives(("bleu", "latency"), (1,)),
            make_sampler("random", 0),
            {"version": SETTINGS_VERSION, "space": "x"},
        )
    except BaseException as err:
        errors.put(f"{type(err).__name__}: {err}")


@pytest.mark.parametrize("round_", range(3))
def test_drivers_opening_one_new_study_together_all_get_it(tmp_path: Path, round_: int) -> None:
    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(DRIVERS), context.Queue()
    procs = [context.Process(target=_open, args=(str(tmp_path), barrier, errors)) for _ in range(DRIVERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    found = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not found, found
    assert all(proc.exitcode == 0 for proc in procs)
