"""A few units of every phase of a search, timed on the machine that will run it, before any heavy work: what the plan
(autocompress.engine.plan) multiplies out.

Each unit is the real operation on the real teacher, only fewer of them: the teacher exported once (the baseline's
export), a batch of dev sentences decoded as BLEU decodes them, sentences timed as latency times them, a sample of the
training sources translated as the KD data is, one training step of the largest and the smallest student structure
(the elastic student's sandwich steps and a trial's distillation steps are made of these), a forward pass (importance
scoring), the lexical table on a sample of pairs. Seconds per unit, with the counts the plan scales by.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autocompress.model import arch
from autocompress.model.batching import collate, encode_pairs

if TYPE_CHECKING:
    from autocompress.data import ParallelCorpus
    from autocompress.target import TargetSpec
    from autocompress.teacher.context import TeacherContext
    from autocompress.teacher.elastic import ElasticSettings

SAMPLE = 128  # training sources translated, pairs encoded
REPEATS = 3  # training steps timed per structure (after one untimed), the median kept


def _seconds(work: Callable[[], object], repeats: int = REPEATS) -> float:
    work()  # untimed: first-call costs (allocations, kernels chosen) are not per-unit costs
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def time_units(
    ctx: TeacherContext,
    dev: ParallelCorpus,
    target: TargetSpec,
    missing: tuple[str, ...],
    elastic: ElasticSettings | None,
    train_tokens: int,
    onnx: Callable[[], tuple[Path, float]],
) -> dict[str, float]:
    """Seconds per unit (and the counts the plan needs): `missing`, the teacher artifacts still to build, decides
    which of the preparation's units are timed; onnx() exports the teacher to fp32 ONNX (the baseline's export, cached
    for it) and gives (its directory, seconds the export took)."""
    units: dict[str, float] = {"train_sentences": len(ctx.train), "dev_sentences": len(dev)}
    units |= _measurement_units(dev, target, onnx)
    rng = random.Random(0)
    sample = sorted(rng.sample(range(len(ctx.train)), min(SAMPLE, len(ctx.train))))
    sources = [ctx.train.sources[i] for i in sample]
    src, tgt = encode_pairs(
        ctx.tokenizer, ctx.task.sources(sources), [ctx.train.references[i] for i in sample], max_length=128
    )
    units["tokens_per_pair"] = statistics.mean(max(len(s), len(t)) for s, t in zip(src, tgt, strict=True))
    units |= _step_units(ctx, src, tgt, elastic, train_tokens)
    if {"teacher_translations", "target_token_counts", "shortlist_table"} & set(missing):
        units |= _translation_units(ctx, sources)
    if "shortlist_table" in missing:
        from autocompress.teacher.lexicon import TABLE_WIDTH, lexical_ranking

        source_size = ctx.teacher.get_input_embeddings().num_embeddings
        target_size = ctx.teacher.get_output_embeddings().out_features
        units["table_pair_s"] = _seconds(
            lambda: lexical_ranking(src, tgt, source_size, target_size, TABLE_WIDTH, lambda _m: None), 1
        ) / len(src)
    return {k: round(v, 6) for k, v in units.items()}


def _measurement_units(
    dev: ParallelCorpus, target: TargetSpec, onnx: Callable[[], tuple[Path, float]]
) -> dict[str, float]:
    from autocompress.evaluate.latency import encode
    from autocompress.evaluate.quality import BLEU_BATCH
    from autocompress.runtime import open_artifact

    onnx_dir, export_s = onnx()
    runtime = open_artifact(onnx_dir, threads=target.threads, providers=target.providers)
    batch = list(dev.sources[:BLEU_BATCH])
    bleu = _seconds(lambda: runtime.translate(batch, batch_size=BLEU_BATCH, max_length=target.max_length), 1)
    singles = encode(runtime, list(dev.sources[: min(4, target.latency_sentences)]))

    def one_pass() -> None:
        for ids, mask in singles:
            runtime.generate_ids(ids, mask, target.max_length, beam=target.beam)

    sentence = _seconds(one_pass, 1) / len(singles)
    return {"export_s": export_s, "bleu_sentence_s": bleu / len(batch), "latency_sentence_s": sentence}


def _step_units(
    ctx: TeacherContext, src: list[list[int]], tgt: list[list[int]], elastic: ElasticSettings | None, tokens: int
) -> dict[str, float]:
    """One optimizer step (forward, backward) on about `tokens` padded tokens, for the largest and the smallest
    structure the space trains, and one forward of the teacher (importance scoring runs forwards and backwards)."""
    from autocompress.teacher.elastic import ElasticSettings, SubNet, structure

    model = copy.deepcopy(ctx.teacher).float().to(ctx.device).train()
    width = max(max(len(s), len(t)) for s, t in zip(src, tgt, strict=True))
    ids = list(range(min(len(src), max(1, tokens // width))))
    batch = {k: v.to(ctx.device) for k, v in collate(src, tgt, ids, ctx.tokenizer.pad_token_id).items()}
    padded = width * len(ids)
    depth = {stack: len(arch.layers(model, stack)) for stack in arch.STACKS}
    # which layers a structure keeps does not change its cost: any order will do, so importance is not needed yet
    layers = {stack: [float(depth[stack] - i) for i in range(depth[stack])] for stack in arch.STACKS}
    settings = elastic or ElasticSettings((1, 1), (1, 1))
    largest = settings.largest() if elastic else SubNet(depth["encoder"], depth["decoder"], 0.0, 1.0)
    smallest = settings.smallest() if elastic else largest

    def step(sub: SubNet) -> Callable[[], None]:
        def run() -> None:
            with structure(model, sub, layers):
                model(**batch).loss.backward()
            model.zero_grad(set_to_none=True)

        return run

    def forward() -> None:
        with torch.no_grad():
            model(**batch)

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-9)  # its update, clipping and zeroing: once a step
    updates: list[float] = []

    def update() -> None:
        with structure(model, largest, layers):
            model(**batch).loss.backward()
        started = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        updates.append(time.perf_counter() - started)

    for _ in range(3):
        update()
    per_token = 1.0 / padded
    return {
        "step_largest_token_s": _seconds(step(largest)) * per_token,
        "step_smallest_token_s": _seconds(step(smallest)) * per_token,
        "forward_token_s": _seconds(forward) * per_token,
        "update_s": statistics.median(updates[1:]),  # the first allocates the optimizer's state
        "teacher_layers": float(sum(depth.values())),
    }


def _translation_units(ctx: TeacherContext, sources: list[str]) -> dict[str, float]:
    """The KD data's fixed cost (the teacher's int8 artifact) and seconds per training source."""
    from autocompress.teacher.translations import time_translation

    setup, per_sentence = time_translation(
        ctx.teacher, ctx.tokenizer, ctx.task, sources, ctx.translation_settings, ctx.device
    )
    return {"kd_setup_s": setup, "kd_sentence_s": per_sentence}
