"""Generation-level latency of an artifact: p50/p95 ms a sentence at batch 1, sentences/s at each batch size.

Timed from token ids to output ids (tokenisation is the same for every candidate and not the model's cost), after
warm-up passes, summarised over repeats by the target's statistic (min by default, see TargetSpec), under the
target's measurement lock and thread settings.

Against a reference (the teacher's baseline timing of the same sentences, taken on the same machine at the start of
the search), a timing does two more things: it stops as soon as the candidate is plainly slower than the teacher
(the target's `give_up`; such a candidate can never be chosen, and its BLEU decoding is skipped by the worker), and it
judges whether the machine was disturbed against that quiet reading rather than against fixed numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autocompress.evaluate import Measurement
from autocompress.measure_lock import exclusive
from autocompress.runtime import Seq2SeqRuntime, open_artifact
from autocompress.target import TargetSpec

SUMMARIES = {"min": np.min, "median": np.median}  # TargetSpec.statistic → how repeats are summarised
# A timing is re-taken (at most RETAKES times) when the machine was disturbed while it ran. Measured on the 2-core VM
# (the teacher fp32 ONNX at 30 ms and CTranslate2 int8 at 11 ms a sentence, 32 sentences, 5 repeats; quiet, and with a
# busy process on the measured core):
# - a fixed piece of work (probe_ms, ~15 ms) takes 15.2-16.5 ms quiet, 15.2-16.5 with the other core busy and
#   31-32 ms with the measured core shared: a probe more than PROBE_LIMIT above the quiet one means shared core.
#   (A 1-ms probe cannot see it: its fastest run slips between the scheduler's slices.)
# - the per-sentence spread across repeats (median coefficient of variation) only doubled under that load
#   (0.018-0.046 quiet, 0.034-0.074 loaded), while tiny students are 0.15-0.27 on a quiet machine, because the
#   absolute jitter (0.2-0.8 ms a sentence) is a large part of a 2-ms sentence. So a scattered timing counts only when
#   its spread is above CV_LIMIT *and* its absolute spread several times (JITTER_FACTOR) the quiet teacher's.
CV_LIMIT, PROBE_LIMIT, JITTER_FACTOR, RETAKES = 0.15, 0.25, 3.0, 2
# A candidate whose sentences take the target's `give_up` times the teacher's (1.25 by default; the median of the
# paired ratios over the first GIVE_UP_AFTER sentences of a pass, or all of a shorter set) in CONFIRM passes running
# stops being timed: slower than the uncompressed teacher, it is not a compression anyone would choose. One pass is
# not enough: a cold first pass of a sub-millisecond model on a busy CI machine read 1.28x its own warm medians.
GIVE_UP_AFTER, CONFIRM = 8, 2


@dataclass(frozen=True)
class LatencyReference:
    """The teacher's quiet timing of the same sentences on this machine: per-sentence ms, the probe, the jitter."""

    per_sentence_ms: tuple[float, ...]
    probe_ms: float
    jitter_ms: float

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> LatencyReference | None:
        """From a latency_p50_ms measurement's details; None for one taken without per-sentence readings."""
        if "per_sentence_ms" not in details or not details.get("attempts"):
            return None
        probes = [p for a in details["attempts"] for p in (a["probe_before_ms"], a["probe_after_ms"])]
        return cls(tuple(details["per_sentence_ms"]), min(probes), float(details["jitter_ms"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyReference:
        return cls(tuple(data["per_sentence_ms"]), float(data["probe_ms"]), float(data["jitter_ms"]))


def encode(runtime: Seq2SeqRuntime, sentences: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [runtime.encode([text]) for text in sentences]


def measure_latency(
    artifact: Path,
    sentences: Sequence[str],
    target: TargetSpec,
    forced_new_tokens: int | None = None,
    reference: LatencyReference | None = None,
) -> dict[str, Measurement]:
    """forced_new_tokens: decode exactly that many tokens a sentence (random-weight models), else up to max_length.
    reference: the teacher's quiet timing of the same sentences (the driver's baseline): the timing gives up on a
    candidate plainly slower than it (details' `cut`: only latency is returned then) and judges disturbance by it."""
    sentences = list(sentences)[: target.latency_sentences]
    with exclusive(target):
        runtime = open_artifact(artifact, threads=target.threads, providers=target.providers)
        singles = encode(runtime, sentences)
        new_tokens = forced_new_tokens or target.max_length

        def run(batch: list[tuple[np.ndarray, np.ndarray]]) -> None:
            ids, mask = _pad(batch, runtime.manifest.pad_token_id)
            runtime.generate_ids(ids, mask, new_tokens, beam=target.beam, ignore_eos=forced_new_tokens is not None)

        attempts: list[dict[str, float]] = []
        for _ in range(RETAKES + 1):
            before = probe_ms()
            per_sentence, cut = _time_singles(run, singles, target, reference)
            after = probe_ms()
            attempts.append(
                {
                    "cv": _cv(per_sentence),
                    "jitter_ms": _jitter(per_sentence),
                    "probe_before_ms": before,
                    "probe_after_ms": after,
                }
            )
            if cut is not None or not disturbed(attempts[-1], reference):
                break
        summary = SUMMARIES[target.statistic]
        per_sentence_ms = summary(per_sentence, axis=0)
        throughput = {}
        for size in target.batch_sizes if cut is None else ():
            if size == 1:  # the timed passes above are batch 1 already: a second loop would only cost time
                throughput[size] = len(singles) / float(summary(per_sentence.sum(axis=1) / 1000))
                continue
            batches = [singles[i : i + size] for i in range(0, len(singles), size)]
            timings = []
            for repeat in range(-target.warmup, target.repeats):
                started = time.perf_counter()
                for batch in batches:
                    run(batch)
                if repeat >= 0:
                    timings.append(time.perf_counter() - started)
            throughput[size] = len(singles) / float(summary(timings))
    signature = (
        f"device:{target.device}|threads:{target.threads}|cores:{_cores(target)}|{target.decoding_signature()}"
        f"|forced_tokens:{forced_new_tokens}|n:{len(singles)}|warmup:{target.warmup}|repeats:{target.repeats}"
        f"|stat:{target.statistic}"
        f"|omp_wait:{os.environ.get('OMP_WAIT_POLICY', 'unset')}|ort_spinning:0|providers:{','.join(target.providers)}"
    )
    details: dict[str, Any] = {
        "batch": 1,
        "per_sentence_cv": _cv(per_sentence),
        "jitter_ms": _jitter(per_sentence),
        "disturbed": cut is None and disturbed(attempts[-1], reference),  # still, after the retakes: suspect
        "attempts": attempts,
        "per_sentence_ms": [round(float(v), 3) for v in per_sentence_ms],  # what later timings are held against
        # both summaries of the same samples, so benchmarks can compare them side by side
        "p50_by_statistic": {
            name: round(float(np.percentile(f(per_sentence, axis=0), 50)), 3) for name, f in SUMMARIES.items()
        },
    }
    if cut is not None:
        details["cut"] = cut
    found = {
        "latency_p50_ms": Measurement(
            "latency_p50_ms", round(float(np.percentile(per_sentence_ms, 50)), 3), "ms", signature, details
        ),
        "latency_p95_ms": Measurement(
            "latency_p95_ms", round(float(np.percentile(per_sentence_ms, 95)), 3), "ms", signature, {"batch": 1}
        ),
    }
    for size, rate in throughput.items():
        found[f"throughput_b{size}"] = Measurement(
            f"throughput_b{size}", round(rate, 3), "sentences/s", signature, {"batch": size}
        )
    return found


def _time_singles(
    run: Callable[[list[tuple[np.ndarray, np.ndarray]]], None],
    singles: list[tuple[np.ndarray, np.ndarray]],
    target: TargetSpec,
    reference: LatencyReference | None,
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """(repeats × sentences ms, None), or, once CONFIRM passes running show the candidate plainly slower than the
    reference, (the last of them: 1 × the sentences timed, what was seen). Warm-up passes count too: a slow
    candidate is seen in its first sentences, before any timed pass."""
    per_sentence = np.zeros((target.repeats, len(singles)))
    paired = reference is not None and target.give_up is not None and len(reference.per_sentence_ms) >= len(singles)
    enough = min(GIVE_UP_AFTER, len(singles))  # a short timing set is judged on its whole pass
    slow_passes = 0
    for repeat in range(-target.warmup, target.repeats):
        this_pass: list[float] = []
        for i, single in enumerate(singles):
            started = time.perf_counter()
            run([single])
            this_pass.append((time.perf_counter() - started) * 1000)
            if repeat >= 0:
                per_sentence[repeat, i] = this_pass[-1]
            if paired and i + 1 == enough:
                assert reference is not None and target.give_up is not None
                ratio = float(np.median(np.array(this_pass) / np.array(reference.per_sentence_ms[:enough])))
                loaded = ratio > target.give_up and probe_ms() > (1 + PROBE_LIMIT) * reference.probe_ms
                slow_passes = slow_passes + 1 if ratio > target.give_up and not loaded else 0  # loaded: cannot tell
                if slow_passes == CONFIRM:
                    cut = {
                        "reason": f"slower than the teacher: {ratio:.2f}× its time on the first {enough} sentences"
                        f" of {CONFIRM} passes running",
                        "ratio": round(ratio, 3),
                        "sentences": enough,
                        "pass": repeat + target.warmup,
                    }
                    return np.array([this_pass]), cut
    return per_sentence, None


def probe_ms() -> float:
    """A fixed piece of work on one thread (~15 ms of small matrix products, the median of three runs after one
    untimed), timed: the same before and after a quiet measurement, twice as long on a shared core."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((192, 192)).astype(np.float32)
    timings = []
    with threadpool_limits(1):
        for run in range(4):
            started = time.perf_counter()
            for _ in range(160):
                a @ a
            if run:
                timings.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(timings)), 4)


def disturbed(attempt: dict[str, float], reference: LatencyReference | None = None) -> bool:
    """Whether a timing's machine was disturbed: its probe moved during it; with the quiet reference, its probe was
    slow throughout (a shared core), or its repeats scattered beyond the quiet jitter; without one, they scattered."""
    before, after = attempt["probe_before_ms"], attempt["probe_after_ms"]
    if abs(after - before) > PROBE_LIMIT * min(before, after):
        return True
    if reference is None:
        return attempt["cv"] > CV_LIMIT
    shared = max(before, after) > (1 + PROBE_LIMIT) * reference.probe_ms
    scattered = attempt["cv"] > CV_LIMIT and attempt.get("jitter_ms", 0.0) > JITTER_FACTOR * reference.jitter_ms
    return shared or scattered


def _pad(batch: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(ids.shape[1] for ids, _ in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, (i, m) in enumerate(batch):
        ids[row, : i.shape[1]], mask[row, : m.shape[1]] = i[0], m[0]
    return ids, mask


def _cores(target: TargetSpec) -> str:
    return ",".join(map(str, target.measured_cores()))


def _jitter(samples: np.ndarray) -> float:
    """Median over sentences of the standard deviation across repeats, in ms: the spread in absolute terms."""
    return round(float(np.median(samples.std(axis=0))), 4) if len(samples) > 1 else 0.0


def _cv(samples: np.ndarray) -> float:
    """Median over sentences of the coefficient of variation across repeats: how steady the timing was."""
    return round(float(np.median(samples.std(axis=0) / samples.mean(axis=0))), 4) if len(samples) > 1 else 0.0
