"""Measurement is exclusive per device: a timing never overlaps another timing or the heavy work of other trials.

Two file locks per device (the CPU, or each GPU: `device_key`), shared by every process of the machine (Ray workers
included):
- `gate`: a measurement holds it exclusively for its whole duration, so no new unit of background work starts;
- `busy`: background work (a training step, an export, a batch of BLEU decoding) holds it shared; a measurement
  takes it exclusively, so it starts once the units already running have finished.
Background work takes the gate only for an instant, so a waiting measurement is never starved by a stream of steps.
Units are short (one optimizer step, one decoding batch), so a measurement waits seconds, not a trial.
On CPU the measurement also pins itself to the target's cores (TargetSpec.measured_cores).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from autocompress.target import TargetSpec

LOCK_DIR = Path(os.environ.get("AUTOCOMPRESS_LOCK_DIR", tempfile.gettempdir()))


def device_key(device: str) -> str:
    """The lock's name for a device: cpu, or the GPU this process computes on. Ray gives each trial its GPUs in
    CUDA_VISIBLE_DEVICES (its cuda:0 is the first listed), so two trials on different GPUs hold different locks and
    two sharing one GPU (--gpus-per-trial 0.5) the same; a process Ray did not place computes on GPU 0."""
    if device != "cuda":
        return device
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return f"cuda{visible or '0'}"


def lock_path(device: str, role: str) -> Path:
    return LOCK_DIR / f"autocompress-{device_key(device)}-{role}.lock"


@contextmanager
def file_lock(path: Path, mode: int) -> Iterator[IO[str]]:
    """An flock on `path` (created if missing) for the block: fcntl.LOCK_EX or fcntl.LOCK_SH."""
    with open(path, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def exclusive(target: TargetSpec) -> Iterator[None]:
    """Hold the device for a measurement; on CPU also pin this process to the target's cores."""
    with (
        file_lock(lock_path(target.device, "gate"), fcntl.LOCK_EX),
        file_lock(lock_path(target.device, "busy"), fcntl.LOCK_EX),
    ):
        previous = os.sched_getaffinity(0)
        if target.device == "cpu":
            os.sched_setaffinity(0, set(target.measured_cores()))
        try:
            yield
        finally:
            os.sched_setaffinity(0, previous)


@contextmanager
def background_work(device: str = "cpu") -> Iterator[None]:
    """One unit of heavy work that must pause while a measurement runs on `device`. Never nest inside exclusive()."""
    with file_lock(lock_path(device, "gate"), fcntl.LOCK_SH):
        busy = open(lock_path(device, "busy"), "a")
        fcntl.flock(busy, fcntl.LOCK_SH)
    try:
        yield
    finally:
        fcntl.flock(busy, fcntl.LOCK_UN)
        busy.close()
