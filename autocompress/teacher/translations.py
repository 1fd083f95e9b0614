"""Sequence-level KD data: the teacher's own translations of the training sources (Kim & Rush 2016), made once per
(teacher, data, task, decoding settings) and cached like the importance scores.

Made with the fastest runtime at hand, since the whole training set is translated: on CUDA the teacher in PyTorch
(bf16, large batches); on CPU a batched int8 artifact of the teacher — CTranslate2 for Marian, onnxruntime otherwise
(int8 translations of the demo teacher score the same dev BLEU as fp32, within 0.1). Which runtime made the data is
part of its cache key and of what it records.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autocompress.measure_lock import background_work

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.task import Task

RUNTIMES = ("auto", "ctranslate2", "onnxruntime", "pytorch")


@dataclass(frozen=True)
class TranslationSettings:
    sentences: int | None = None  # None: the whole training set; else a seeded sample of this many
    max_length: int = 128  # new tokens at most (distillation trains on at most this many)
    runtime: str = "auto"
    batch_size: int = 64  # sentences per batch, sorted by length


def resolve_runtime(settings: TranslationSettings, family: str, device: str) -> str:
    if settings.runtime != "auto":
        return settings.runtime
    if device == "cuda":
        return "pytorch"
    return "ctranslate2" if family == "marian" else "onnxruntime"


def cache_settings(settings: TranslationSettings, family: str, device: str) -> dict[str, Any]:
    """What the data depends on besides the teacher, the data and the task (those are the context's key)."""
    return {**asdict(settings), "runtime": resolve_runtime(settings, family, device), "decoding": "greedy"}


def translate_sources(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    sources: Sequence[str],
    settings: TranslationSettings,
    device: str = "cpu",
    threads: int = 0,
    log: Callable[[str], object] = lambda _message: None,
) -> list[list[int]]:
    """The teacher's greedy output ids for each source, without the decoder start token and ending with eos."""
    runtime = resolve_runtime(settings, teacher.config.model_type, device)
    started = time.perf_counter()
    if runtime == "pytorch":
        rows = _pytorch(teacher, tokenizer, task, sources, settings, device)
    else:
        with tempfile.TemporaryDirectory() as tmp, background_work():
            translator = _artifact(teacher, tokenizer, task, runtime, Path(tmp), threads)
            rows = _batched(translator, sources, settings, log)
    eos = teacher.config.eos_token_id
    found = [_labels(row, teacher.config.decoder_start_token_id, eos, teacher.config.pad_token_id) for row in rows]
    seconds = time.perf_counter() - started
    log(f"translated {len(sources)} training sources with the teacher ({runtime}) in {seconds:.0f} s")
    return found


def time_translation(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    sample: Sequence[str],
    settings: TranslationSettings,
    device: str = "cpu",
) -> tuple[float, float]:
    """(seconds to set the runtime up, seconds a source) of translate_sources with these settings, from a sample:
    the unit the plan multiplies by the training set's size."""
    runtime = resolve_runtime(settings, teacher.config.model_type, device)
    if runtime == "pytorch":
        started = time.perf_counter()
        _pytorch(teacher, tokenizer, task, sample, settings, device)
        return 0.0, (time.perf_counter() - started) / len(sample)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        translator = _artifact(teacher, tokenizer, task, runtime, Path(tmp), 0)
        setup = time.perf_counter() - started
        started = time.perf_counter()
        _batched(translator, sample, settings, None)
        return setup, (time.perf_counter() - started) / len(sample)


def _labels(row: Sequence[int], start: int, eos: int, pad: int) -> list[int]:
    """Output ids as training labels: no decoder start, no padding, ending with eos (CTranslate2 leaves it out)."""
    tokens = [int(t) for t in row]
    if tokens and tokens[0] == start:
        tokens = tokens[1:]
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    return [t for t in tokens if t != pad] + [eos]


def _artifact(teacher: Any, tokenizer: Any, task: Task, runtime: str, directory: Path, threads: int) -> Any:
    """An int8 artifact of the teacher, opened with every core this process may use."""
    if runtime == "ctranslate2":
        from autocompress.export.ctranslate2 import export_ctranslate2
        from autocompress.runtime.ct2_loop import CT2Seq2Seq

        return CT2Seq2Seq(export_ctranslate2(teacher, tokenizer, directory / "ct2", "int8", task), threads=threads)
    from autocompress.export.onnx import export_onnx
    from autocompress.export.quantize import quantize_onnx
    from autocompress.runtime.onnx_loop import OnnxSeq2Seq

    fp32 = export_onnx(teacher, tokenizer, directory / "fp32", task=task)
    int8 = quantize_onnx(fp32, directory / "int8", {"dtype": "int8"})
    return OnnxSeq2Seq(int8, threads=threads or None)


def _batched(translator: Any, sources: Sequence[str], settings: TranslationSettings, log: Any) -> list[list[int]]:
    from tqdm import tqdm

    order = sorted(range(len(sources)), key=lambda i: len(sources[i]), reverse=True)
    rows: list[list[int]] = [[] for _ in sources]
    batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    for ids in tqdm(batches, desc="teacher translations", unit="batch", disable=None, leave=False):
        input_ids, mask = translator.encode([sources[i] for i in ids])
        for i, row in zip(ids, translator.generate_ids(input_ids, mask, settings.max_length), strict=True):
            rows[i] = list(row)
    return rows


def _pytorch(teacher: Any, tokenizer: Any, task: Task, sources: Sequence[str], settings: Any, device: str) -> list:
    from autocompress.model.translate import generate_ids

    model = teacher.to(device).eval()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        return generate_ids(
            model, tokenizer, sources, batch_size=settings.batch_size, max_length=settings.max_length, task=task
        )
