"""What a trial measures and what a search may optimise: one table.

Every reader takes its keys, labels, units and directions from here: the study (its directions and metric names,
which optuna-dashboard shows), the tables, the plots, the progress line, the model card and the JSON summary. The
throughput measurements follow the target's batch sizes, so the table is made for a target's batch sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autocompress.errors import UserInputError

MAXIMIZE, MINIMIZE = "maximize", "minimize"


@dataclass(frozen=True)
class Measure:
    key: str  # the measurement's key in a trial's values (autocompress.evaluate)
    label: str
    unit: str
    direction: str  # MAXIMIZE or MINIMIZE: which way is better
    batch: int | None = None  # the batch size it was measured at, where that matters

    @property
    def title(self) -> str:
        """The label with its unit: axis titles, column headers, optuna-dashboard's metric names."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def higher_is_better(self) -> bool:
        return self.direction == MAXIMIZE


def measures(batch_sizes: Sequence[int]) -> tuple[Measure, ...]:
    """Every measurement a trial records, in the order tables show them."""
    return (
        Measure("bleu", "BLEU", "", MAXIMIZE),
        Measure("chrf", "chrF", "", MAXIMIZE),
        Measure("latency_p50_ms", "p50 latency, batch 1", "ms", MINIMIZE, 1),
        Measure("latency_p95_ms", "p95 latency, batch 1", "ms", MINIMIZE, 1),
        *(Measure(f"throughput_b{b}", f"throughput, batch {b}", "sentences/s", MAXIMIZE, b) for b in batch_sizes),
        Measure("peak_rss_mb", "peak RSS", "MiB", MINIMIZE),
        Measure("size_mb", "size on disk", "MiB", MINIMIZE),
    )


# --objectives names → the measurement each optimises. throughput: at the target's largest batch size.
_OBJECTIVE_KEYS = {
    "bleu": "bleu",
    "chrf": "chrf",
    "latency": "latency_p50_ms",
    "latency_p95": "latency_p95_ms",
    "memory": "peak_rss_mb",
    "size": "size_mb",
    "throughput": None,
}
OBJECTIVE_NAMES = tuple(_OBJECTIVE_KEYS)
DEFAULT_OBJECTIVES = ("bleu", "latency", "memory")


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in _OBJECTIVE_KEYS]
    if unknown or not names:
        raise UserInputError(
            f"objective {unknown[0] if unknown else text!r} is unknown: choose from {', '.join(OBJECTIVE_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise UserInputError(f"--objectives {text!r} names an objective twice: give each once")
    if "bleu" not in names and "chrf" not in names:
        raise UserInputError("the objectives need a quality measure: include bleu or chrf")
    return names


def objective(name: str, batch_sizes: Sequence[int]) -> Measure:
    key = _OBJECTIVE_KEYS[name] or f"throughput_b{max(batch_sizes)}"
    return next(m for m in measures(batch_sizes) if m.key == key)


def objectives(names: Sequence[str], batch_sizes: Sequence[int]) -> tuple[Measure, ...]:
    return tuple(objective(name, batch_sizes) for name in names)
