"""The target an artifact is measured on: device, threads, core set, batch sizes, pinned decoding settings."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autocompress.errors import UserInputError

DEVICES = ("cpu", "cuda")
STATISTICS = ("min", "median")


@dataclass(frozen=True)
class TargetSpec:
    device: str = "cpu"
    # onnxruntime intra-op threads (CPU). 1 by default: on the 2-core VM of the fidelity benchmark, two threads
    # (passive waits) gave a 16 % CV between re-measurements, one thread on one pinned core 2.5 %.
    threads: int = 1
    cores: tuple[int, ...] | None = None  # CPU cores pinned while measuring; None: the last `threads` cores
    batch_sizes: tuple[int, ...] = (1, 16)  # latency at the first, throughput at each
    beam: int = 1
    max_length: int = 128
    providers: tuple[str, ...] = field(default=("CPUExecutionProvider",))
    warmup: int = 2  # untimed passes before timing
    repeats: int = 5  # timed passes, summarised by `statistic`
    latency_sentences: int = 32  # dev sentences timed one by one for the batch-1 percentiles
    # How repeats of one timing are summarised. min: interference (other processes, a hypervisor's steal time) only
    # ever adds time, so the fastest repeat is the artifact's own cost and re-measurements agree (fidelity benchmark);
    # median: what a user of a shared machine sees.
    statistic: str = "min"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise UserInputError(f"target device {self.device!r} is unknown: use one of {', '.join(DEVICES)}")
        for name in ("threads", "beam", "max_length", "repeats", "latency_sentences"):
            if getattr(self, name) < 1:
                raise UserInputError(f"target {name} = {getattr(self, name)} must be at least 1")
        if self.statistic not in STATISTICS:
            raise UserInputError(f"target statistic {self.statistic!r} is unknown: use one of {', '.join(STATISTICS)}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise UserInputError(f"target batch_sizes {list(self.batch_sizes)} must be positive integers")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserInputError(f"target has no setting {unknown[0]!r}: known settings are {', '.join(sorted(known))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        if values.get("device") == "cuda" and "providers" not in values:
            values["providers"] = ("CUDAExecutionProvider", "CPUExecutionProvider")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Path) -> TargetSpec:
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise UserInputError(f"target file {path} does not exist: check the path") from None
        except yaml.YAMLError as err:
            raise UserInputError(f"target file {path} is not valid YAML ({str(err).splitlines()[0]})") from None
        return cls.from_dict((data or {}).get("target", data or {}))

    def measured_cores(self) -> tuple[int, ...]:
        """The cores a measurement is pinned to: as given, else the last `threads` this process may use. Pinned,
        because an unpinned timing migrates between cores and its re-measurements scatter (fidelity benchmark)."""
        if self.cores is not None:
            return self.cores
        return tuple(sorted(os.sched_getaffinity(0))[-self.threads :])

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def decoding_signature(self) -> str:
        return f"beam:{self.beam}|max_len:{self.max_length}"
