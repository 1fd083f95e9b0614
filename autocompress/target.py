"""The target an artifact is measured on: device, threads, core set, batch sizes, pinned decoding settings."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autocompress.errors import UserInputError
from autocompress.inputs import integer, mapping, read_yaml_mapping

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
    # A candidate whose sentences take this many times the teacher's stops being timed, its BLEU is not decoded, and
    # it is kept as cut short (evaluate.latency): slower than the uncompressed teacher, it is not a compression to
    # choose. null: every candidate is measured whole (a search that wants slow but small models on its front).
    give_up: float | None = 1.25

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise UserInputError(f"target device {self.device!r} is unknown: use one of {', '.join(DEVICES)}")
        for name in ("threads", "beam", "max_length", "repeats", "latency_sentences", "warmup"):
            integer(getattr(self, name), f"target {name}", low=0 if name == "warmup" else 1)
        if self.give_up is not None and (
            isinstance(self.give_up, bool) or not isinstance(self.give_up, int | float) or not self.give_up > 1
        ):
            raise UserInputError(f"target give_up {self.give_up!r} must be a ratio above 1 (e.g. 1.25) or null")
        if self.statistic not in STATISTICS:
            raise UserInputError(f"target statistic {self.statistic!r} is unknown: use one of {', '.join(STATISTICS)}")
        if not isinstance(self.batch_sizes, tuple) or not self.batch_sizes:
            raise UserInputError(f"target batch_sizes {self.batch_sizes!r} must be a list of positive integers")
        for size in self.batch_sizes:
            integer(size, "target batch_sizes entry")
        if self.cores is not None:
            if not isinstance(self.cores, tuple) or not self.cores:
                raise UserInputError(f"target cores {self.cores!r} must be a list of CPU numbers, e.g. [1]")
            for core in self.cores:
                integer(core, "target cores entry", low=0)
        if not isinstance(self.providers, tuple) or not all(isinstance(p, str) for p in self.providers):
            raise UserInputError(f"target providers {self.providers!r} must be a list of onnxruntime provider names")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        data = mapping(data, "target")
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
        data = read_yaml_mapping(path, "target file")
        return cls.from_dict(mapping(data["target"], f"target file {path}: target") if "target" in data else data)

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
