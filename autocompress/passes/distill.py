"""Distillation: train the student from the teacher for a fixed, seeded step budget.

word: α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE(reference labels) (Hinton et al.; word-level KD of Kim & Rush).
sequence: CE on the teacher's own greedy translations of training sources (sequence-level KD, Kim & Rush 2016),
generated once per teacher and cached. word+sequence: the word-level loss on those translations.
finetune: CE on the references alone, no teacher: the baseline that shows what the teacher adds.
"""

from __future__ import annotations

import random
import time
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from autocompress.evaluate.measure_lock import background_work
from autocompress.model.batching import collate, encode_pairs, token_batches
from autocompress.passes.base import Choices, Param, Pass, SpaceInfo

if TYPE_CHECKING:
    from collections.abc import Iterator

    from transformers import PreTrainedModel

    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

METHODS = ("word", "sequence", "word+sequence", "finetune")
WORD_LEVEL = ("word", "word+sequence")  # the methods that use T and α
PARAMS = (
    Param("method", "categorical", "word", "what the student learns from (see the module docstring)", choices=METHODS),
    Param(
        "temperature",
        "float",
        2.0,
        "softmax temperature T of word-level KD",
        low=0.5,
        high=10.0,
        when=(("method", WORD_LEVEL),),
    ),
    Param(
        "alpha",
        "float",
        0.5,
        "weight α of the KD term against the label cross-entropy",
        low=0.0,
        high=1.0,
        when=(("method", WORD_LEVEL),),
    ),
    Param(
        "steps", "int", 400, "optimizer steps (the trial's training budget); 0 skips training", low=0, high=1_000_000
    ),
    Param(
        "lr",
        "float",
        1e-3,  # on the demo, 1e-3 recovered a pruned student within 300 steps (80 % of the teacher's dev BLEU)
        "peak learning rate (linear warm-up, then linear decay to zero)",
        low=1e-6,
        high=1e-2,
        log=True,
    ),
    Param("warmup", "float", 0.05, "fraction of the steps spent warming up", low=0.0, high=0.5),
    Param("max_tokens", "int", 2000, "padded target tokens per batch", low=64, high=65536),
)
MAX_LENGTH = 128


class Distill(Pass):
    name = "distill"
    stage = "train"
    params = PARAMS

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("steps", 1) == 0

    def included(self, params: dict[str, Any], chosen: Choices, space: SpaceInfo) -> bool:
        """A structurally changed student is always trained (the space's settings, else the defaults)."""
        return self.wanted(chosen, space) and not self.is_noop(params)

    def apply(self, subject: PreTrainedModel, config: PassConfig, ctx: PassContext | None) -> None:
        assert ctx is not None
        if not self.is_noop(config.as_dict()):
            distill(subject, config, ctx)


def distill(model: PreTrainedModel, config: PassConfig, ctx: PassContext) -> None:
    steps = config["steps"]
    method = config["method"]
    device = torch.device(ctx.device)
    model.to(device).train()
    teacher = ctx.teacher.to(device).eval() if "word" in method else None
    alpha, temperature = config["alpha"], config["temperature"]
    batches = _batches(ctx, method, config["max_tokens"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, round(config["warmup"] * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(steps - warmup, 1)))
    )
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    started, losses = time.perf_counter(), []
    for step in range(1, steps + 1):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        with background_work(device.type):  # a measurement elsewhere waits for this step, then pauses the next
            with amp:
                out = model(**batch)
                loss = out.loss
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(**batch).logits
                    kd = _kd_loss(out.logits.float(), teacher_logits.float(), batch["labels"] != -100, temperature)
                    loss = alpha * kd + (1 - alpha) * out.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        schedule.step()
        if ctx.sparsifier is not None:
            ctx.sparsifier.step(step, steps)
        losses.append(loss.item())
        if step % 100 == 0 or step == steps:
            ctx.log(f"distill step {step}/{steps} loss {sum(losses[-100:]) / len(losses[-100:]):.3f}")
    seconds = time.perf_counter() - started
    model.eval()
    ctx.metrics["distill"] = {
        "steps": steps,
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 3),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
    }


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(teacher_T ‖ student_T), averaged over real target tokens."""
    kl = F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        log_target=True,
        reduction="none",
    ).sum(-1)
    return temperature**2 * (kl * mask).sum() / mask.sum().clamp_min(1)


def _batches(ctx: PassContext, method: str, max_tokens: int) -> Iterator[dict[str, torch.Tensor]]:
    if "sequence" in method:
        src, tgt = teacher_translations(ctx)
    else:
        train = ctx.model_train
        src, tgt = encode_pairs(ctx.tokenizer, train.sources, train.references, MAX_LENGTH)
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]
    rng = random.Random(ctx.seed)
    while True:  # epochs, each in a new seeded order
        for ids in token_batches(lengths, max_tokens, rng):
            yield collate(src, tgt, ids, ctx.tokenizer.pad_token_id)


def teacher_translations(ctx: PassContext) -> tuple[list[list[int]], list[list[int]]]:
    """Source ids and the teacher's greedy output ids for a seeded sample of training sources (cached)."""
    n = min(ctx.teacher_translations, len(ctx.train))
    chosen = sorted(random.Random(0).sample(range(len(ctx.train)), n))
    sources = [ctx.train.sources[i] for i in chosen]
    src = ctx.tokenizer(ctx.task.sources(sources), truncation=True, max_length=MAX_LENGTH)["input_ids"]

    def build() -> dict[str, torch.Tensor]:
        outputs = _greedy_ids(ctx, sources)
        return {
            "ids": torch.tensor([t for o in outputs for t in o], dtype=torch.int32),
            "offsets": torch.tensor([0, *accumulate(len(o) for o in outputs)], dtype=torch.int64),
        }

    found = ctx.cached("teacher_translations", {"sentences": n, "decoding": "greedy", "max_length": MAX_LENGTH}, build)
    ids, offsets = found["ids"].tolist(), found["offsets"].tolist()
    return src, [ids[offsets[i] : offsets[i + 1]] for i in range(n)]


def _greedy_ids(ctx: PassContext, sources: list[str]) -> list[list[int]]:
    from autocompress.model.translate import generate_ids

    rows = generate_ids(ctx.teacher.eval(), ctx.tokenizer, sources, batch_size=64, max_length=MAX_LENGTH, task=ctx.task)
    pad, eos = ctx.tokenizer.pad_token_id, ctx.tokenizer.eos_token_id
    # The decoder start token is not a label; padding after eos is not either.
    return [[t for t in row[1:] if t != pad] or [eos] for row in rows]
