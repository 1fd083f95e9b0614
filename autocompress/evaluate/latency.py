"""Generation-level latency of an artifact: p50/p95 ms a sentence at batch 1, sentences/s at each batch size.

Timed from token ids to output ids (tokenisation is the same for every candidate and not the model's cost), after
warm-up passes, summarised over repeats by the target's statistic (min by default, see TargetSpec), under the
target's measurement lock and thread settings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autocompress.evaluate import Measurement
from autocompress.evaluate.measure_lock import exclusive
from autocompress.runtime import Seq2SeqRuntime, open_artifact
from autocompress.target import TargetSpec

SUMMARIES = {"min": np.min, "median": np.median}  # TargetSpec.statistic → how repeats are summarised
# A timing is re-taken (at most RETAKES times) when the machine was disturbed while it ran: its repeats scatter
# (median per-sentence coefficient of variation above CV_LIMIT; a quiet core gives 0.01–0.05, a loaded one 0.3–0.5),
# or a fixed piece of work timed before and after it disagrees by more than PROBE_LIMIT. Other processes of the
# machine are outside the measurement lock: this is how their interference is seen.
CV_LIMIT, PROBE_LIMIT, RETAKES = 0.15, 0.25, 2


def encode(runtime: Seq2SeqRuntime, sentences: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [runtime.encode([text]) for text in sentences]


def measure_latency(
    artifact: Path, sentences: Sequence[str], target: TargetSpec, forced_new_tokens: int | None = None
) -> dict[str, Measurement]:
    """forced_new_tokens: decode exactly that many tokens a sentence (random-weight models), else up to max_length."""
    sentences = list(sentences)[: target.latency_sentences]
    with exclusive(target):
        runtime = open_artifact(artifact, threads=target.threads, providers=target.providers)
        singles = encode(runtime, sentences)
        new_tokens = forced_new_tokens or target.max_length

        def run(batch: list[tuple[np.ndarray, np.ndarray]]) -> None:
            ids, mask = _pad(batch, runtime.manifest.pad_token_id)
            runtime.generate_ids(ids, mask, new_tokens, beam=target.beam, ignore_eos=forced_new_tokens is not None)

        def time_singles() -> np.ndarray:
            per_sentence = np.zeros((target.repeats, len(singles)))
            for repeat in range(-target.warmup, target.repeats):
                for i, single in enumerate(singles):
                    started = time.perf_counter()
                    run([single])
                    if repeat >= 0:
                        per_sentence[repeat, i] = (time.perf_counter() - started) * 1000
            return per_sentence

        attempts: list[dict[str, float]] = []
        for _ in range(RETAKES + 1):
            before = probe_ms()
            per_sentence = time_singles()
            after = probe_ms()
            attempts.append({"cv": _cv(per_sentence), "probe_before_ms": before, "probe_after_ms": after})
            if not disturbed(attempts[-1]):
                break
        summary = SUMMARIES[target.statistic]
        per_sentence_ms = summary(per_sentence, axis=0)
        throughput = {}
        for size in target.batch_sizes:
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
    found = {
        "latency_p50_ms": Measurement(
            "latency_p50_ms",
            round(float(np.percentile(per_sentence_ms, 50)), 3),
            "ms",
            signature,
            {
                "batch": 1,
                "per_sentence_cv": _cv(per_sentence),
                "disturbed": disturbed(attempts[-1]),  # still, after the retakes: the value is suspect
                "attempts": attempts,
                # both summaries of the same samples, so benchmarks can compare them side by side
                "p50_by_statistic": {
                    name: round(float(np.percentile(f(per_sentence, axis=0), 50)), 3) for name, f in SUMMARIES.items()
                },
            },
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


def probe_ms() -> float:
    """A fixed piece of work on one thread (the fastest of five small matrix products), timed: the same before and
    after a measurement on a quiet core."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((192, 192)).astype(np.float32)
    timings = []
    with threadpool_limits(1):
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(8):
                a @ a
            timings.append((time.perf_counter() - started) * 1000)
    return round(min(timings), 4)


def disturbed(attempt: dict[str, float]) -> bool:
    before, after = attempt["probe_before_ms"], attempt["probe_after_ms"]
    return attempt["cv"] > CV_LIMIT or abs(after - before) > PROBE_LIMIT * min(before, after)


def _pad(batch: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(ids.shape[1] for ids, _ in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, (i, m) in enumerate(batch):
        ids[row, : i.shape[1]], mask[row, : m.shape[1]] = i[0], m[0]
    return ids, mask


def _cores(target: TargetSpec) -> str:
    return ",".join(map(str, target.measured_cores()))


def _cv(samples: np.ndarray) -> float:
    """Median over sentences of the coefficient of variation across repeats: how steady the timing was."""
    return round(float(np.median(samples.std(axis=0) / samples.mean(axis=0))), 4) if len(samples) > 1 else 0.0
