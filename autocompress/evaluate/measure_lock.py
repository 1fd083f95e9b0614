"""One measurement at a time per device (and per measured CPU core set), so parallel trials cannot skew timings."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autocompress.target import TargetSpec

LOCK_DIR = Path(os.environ.get("AUTOCOMPRESS_LOCK_DIR", tempfile.gettempdir()))


def lock_path(target: TargetSpec) -> Path:
    cores = "all" if target.cores is None else "-".join(map(str, sorted(target.cores)))
    return LOCK_DIR / f"autocompress-measure-{target.device}-{cores}.lock"


@contextmanager
def exclusive(target: TargetSpec) -> Iterator[None]:
    """Hold the target's measurement lock; on CPU also pin this process to the target's cores."""
    with open(lock_path(target), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        previous = os.sched_getaffinity(0)
        if target.device == "cpu" and target.cores is not None:
            os.sched_setaffinity(0, set(target.cores))
        try:
            yield
        finally:
            os.sched_setaffinity(0, previous)
