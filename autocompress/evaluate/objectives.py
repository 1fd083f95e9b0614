"""What a trial measures and what a search may optimise: one table, made of what the evaluators declare.

An evaluator (one entry of EVALUATORS) declares the measures it takes (key, label, unit, direction, and the
`--objectives` name that optimises it) and measures an exported artifact; the worker runs every registered evaluator
in its `order` (latency first: a candidate slower than the teacher is cut short there, and only evaluators marked
`after_cut` run after a cut). Every reader takes keys, labels, units and directions from here: the study (its
directions and metric names, which optuna-dashboard shows), the tables, the plots, the progress line, the model card
and the JSON summary. A new objective is one file that calls `register_evaluator` (see tests/test_objectives.py).
The throughput measurements follow the target's batch sizes, so the table is made for a target's batch sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.errors import UserInputError

if TYPE_CHECKING:
    from autocompress.data import ParallelCorpus
    from autocompress.evaluate import Measurement
    from autocompress.target import TargetSpec

MAXIMIZE, MINIMIZE = "maximize", "minimize"
DEFAULT_OBJECTIVES = ("bleu", "latency", "memory")


@dataclass(frozen=True)
class Measure:
    key: str  # the measurement's key in a trial's values
    label: str
    unit: str
    direction: str  # MAXIMIZE or MINIMIZE: which way is better
    batch: int | None = None  # the batch size it was measured at, where that matters
    objective: str | None = None  # the --objectives name that optimises it, if any

    @property
    def title(self) -> str:
        """The label with its unit: axis titles, column headers, optuna-dashboard's metric names."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def higher_is_better(self) -> bool:
        return self.direction == MAXIMIZE


@dataclass(frozen=True)
class EvalInputs:
    """What an evaluator measures: the exported artifact, the dev data, the target; the threads a decoding may use
    (the target's, at most the trial's) and the teacher's quiet timing (cut-short), where the search has them."""

    artifact: Path
    dev: ParallelCorpus
    target: TargetSpec
    threads: int = 1
    reference: Any = None  # evaluate.latency.LatencyReference


@dataclass(frozen=True)
class Evaluator:
    name: str  # its phase in a trial's record
    measures: Callable[[Sequence[int]], tuple[Measure, ...]]  # what it measures, for the target's batch sizes
    measure: Callable[[EvalInputs], dict[str, Measurement]]
    order: int = 50  # the worker runs evaluators by this, lowest first
    after_cut: bool = False  # runs on a candidate whose timing was cut short too (cheap, and no decoding)
    background: bool = True  # heavy work that pauses while another trial times (the measurement lock)


EVALUATORS: dict[str, Evaluator] = {}  # in the order tables show their measures


def register_evaluator(evaluator: Evaluator) -> Evaluator:
    EVALUATORS[evaluator.name] = evaluator
    return evaluator


def unregister_evaluator(name: str) -> None:
    EVALUATORS.pop(name, None)


def measures(batch_sizes: Sequence[int]) -> tuple[Measure, ...]:
    """Every measurement a trial records, in the order tables show them."""
    return tuple(m for evaluator in EVALUATORS.values() for m in evaluator.measures(batch_sizes))


def objective_names() -> tuple[str, ...]:
    return tuple(m.objective for m in measures((1,)) if m.objective)


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in objective_names()]
    if unknown or not names:
        raise UserInputError(
            f"objective {unknown[0] if unknown else text!r} is unknown: choose from {', '.join(objective_names())}"
        )
    if len(set(names)) != len(names):
        raise UserInputError(f"--objectives {text!r} names an objective twice: give each once")
    if "bleu" not in names and "chrf" not in names:
        raise UserInputError("the objectives need a quality measure: include bleu or chrf")
    return names


def objective(name: str, batch_sizes: Sequence[int]) -> Measure:
    return next(m for m in measures(batch_sizes) if m.objective == name)


def objectives(names: Sequence[str], batch_sizes: Sequence[int]) -> tuple[Measure, ...]:
    return tuple(objective(name, batch_sizes) for name in names)


def _quality(inputs: EvalInputs) -> dict[str, Measurement]:
    # On the target's device (a CUDA target's fp16 kernels translate a little differently from the CPU's) and at the
    # target's threads, as deployed: on the 2-core VM, CTranslate2 with two threads (passive waits) decoded the demo
    # dev set 8-14× slower at batch 1 than with one (31.9 against 3.9 s).
    from autocompress.evaluate.quality import artifact_quality
    from autocompress.runtime import open_artifact

    runtime = open_artifact(inputs.artifact, threads=inputs.threads, providers=inputs.target.providers)
    return artifact_quality(runtime, inputs.dev, inputs.target)


def _latency(inputs: EvalInputs) -> dict[str, Measurement]:
    from autocompress.evaluate.latency import measure_latency

    return measure_latency(inputs.artifact, list(inputs.dev.sources), inputs.target, reference=inputs.reference)


def _memory(inputs: EvalInputs) -> dict[str, Measurement]:
    from autocompress.evaluate.memory import measure_memory

    return measure_memory(inputs.artifact, list(inputs.dev.sources), inputs.target)


def _size(inputs: EvalInputs) -> dict[str, Measurement]:
    from autocompress.evaluate.size import artifact_size

    return artifact_size(inputs.artifact)


def _timing(batch_sizes: Sequence[int]) -> tuple[Measure, ...]:
    largest = max(batch_sizes)
    return (
        Measure("latency_p50_ms", "p50 latency, batch 1", "ms", MINIMIZE, 1, "latency"),
        Measure("latency_p95_ms", "p95 latency, batch 1", "ms", MINIMIZE, 1, "latency_p95"),
        *(
            Measure(f"throughput_b{b}", f"throughput, batch {b}", "sentences/s", MAXIMIZE, b, None)
            if b != largest
            else Measure(f"throughput_b{b}", f"throughput, batch {b}", "sentences/s", MAXIMIZE, b, "throughput")
            for b in batch_sizes
        ),
    )


register_evaluator(
    Evaluator(
        "bleu",
        lambda _: (
            Measure("bleu", "BLEU", "", MAXIMIZE, None, "bleu"),
            Measure("chrf", "chrF", "", MAXIMIZE, None, "chrf"),
        ),
        _quality,
        order=10,
    )
)
# Latency first: a candidate slower than the teacher is seen in seconds, and its BLEU decoding is not paid. It takes
# the measurement lock itself (it is the timing the other trials' heavy work pauses for).
register_evaluator(Evaluator("latency", _timing, _latency, order=0, background=False))
# Peak RSS is not a timing; its process start is heavy work.
register_evaluator(
    Evaluator("memory", lambda _: (Measure("peak_rss_mb", "peak RSS", "MiB", MINIMIZE, None, "memory"),), _memory, 20)
)
register_evaluator(
    Evaluator(
        "size",
        lambda _: (Measure("size_mb", "size on disk", "MiB", MINIMIZE, None, "size"),),
        _size,
        order=30,
        after_cut=True,
        background=False,
    )
)


from autocompress import plugins  # noqa: E402  (after the built-in entries: a plugin may replace one)

plugins.load()
