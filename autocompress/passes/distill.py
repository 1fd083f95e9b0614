"""Distillation: train the student from the teacher for a fixed, seeded step budget.

word: α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE(reference labels) (Hinton et al.; word-level KD of Kim & Rush).
sequence: CE on the teacher's own greedy translations of the training sources (sequence-level KD, Kim & Rush 2016),
made once per teacher and data and cached (autocompress.teacher.translations). word+sequence: the word-level loss
on those translations.
finetune: CE on the references alone, no teacher: the baseline that shows what the teacher adds.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from autocompress.measure_lock import background_work
from autocompress.model import arch
from autocompress.model.batching import collate, encode_pairs, token_batches
from autocompress.passes.base import Ask, Choices, ModelPass, Param, SpaceInfo, TeacherLayers

if TYPE_CHECKING:
    from collections.abc import Iterator

    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig
    from autocompress.teacher.context import TeacherContext

METHODS = ("word", "sequence", "word+sequence", "finetune")
SCHEDULES = ("linear", "wsd")
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
        "peak learning rate (after the warm-up; see schedule)",
        low=1e-6,
        high=1e-2,
        log=True,
    ),
    Param(
        "schedule",
        "categorical",
        "linear",
        "linear: warm-up, then linear decay to zero at `steps`. wsd: warm-up, constant, then a linear cool-down over "
        "the last `cooldown` of the steps; training continued to more steps resumes from the state before the "
        "cool-down, exactly as if it had run longer (multi-fidelity rungs)",
        choices=SCHEDULES,
    ),
    Param("warmup", "float", 0.05, "linear: fraction of the steps spent warming up", low=0.0, high=0.5),
    Param(
        "warmup_steps",
        "int",
        100,
        "wsd: steps spent warming up (a number, so that every budget shares them)",
        low=0,
        high=100_000,
        when=(("schedule", ("wsd",)),),
    ),
    Param(
        "cooldown",
        "float",
        0.1,
        "wsd: fraction of the steps that cool down",
        low=0.0,
        high=0.5,
        when=(("schedule", ("wsd",)),),
    ),
    Param("max_tokens", "int", 2000, "padded target tokens per batch", low=64, high=65536),
)
MAX_LENGTH = 128


class Distill(ModelPass):
    name = "distill"
    stage = "train"
    params = PARAMS

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        sequence = any("sequence" in str(method) for method in values.get("method", ()))
        return ("teacher_translations",) if sequence else ()  # sequence-level KD reads the teacher's translations

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        source = recipe.get("init", {}).get("source")
        return f"{params.get('steps')} steps" + (f" ({source})" if source else "")

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("steps", 1) == 0

    def suggest(self, ask: Ask, chosen: Choices, space: SpaceInfo) -> None:
        if space.fidelity:  # rungs continue a student's training: only the wsd schedule carries over exactly
            chosen[self.name]["schedule"] = "wsd"
        super().suggest(ask, chosen, space)

    def included(self, params: dict[str, Any], chosen: Choices, space: SpaceInfo) -> bool:
        """A structurally changed student is always trained (the space's settings, else the defaults)."""
        return self.wanted(chosen, space) and not self.is_noop(params)

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        if not self.is_noop(config.as_dict()):
            distill(student, config, build)


@dataclass
class TrainingState:
    """Where a student's training stands: what continuing it needs (multi-fidelity rungs carry it over)."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    masks: list[torch.Tensor] | None = None  # the sparsifier's
    rng: torch.Tensor | None = None  # torch's CPU generator (dropout): a continued run draws what a longer one would

    def save(self, directory: Path) -> Path:
        """Atomically: a state is complete or absent."""
        staging = directory.with_name(directory.name + ".saving")
        staging.mkdir(parents=True, exist_ok=True)
        torch.save(dataclasses.asdict(self), staging / "state.pt")
        staging.replace(directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> TrainingState:
        return cls(**torch.load(directory / "state.pt", weights_only=False))


def stable_steps(config: PassConfig) -> int:
    """The steps before the cool-down: where a wsd run's state carries over to a longer run."""
    steps = config["steps"]
    return steps - round(config["cooldown"] * steps) if config["schedule"] == "wsd" else steps


def learning_rate(config: PassConfig, step: int) -> float:
    """The multiplier of the peak rate at optimizer step `step` (0-based)."""
    steps, s = config["steps"], step + 1
    if config["schedule"] == "linear":
        warmup = max(1, round(config["warmup"] * steps))
        return min(s / warmup, max(0.0, (steps - step) / max(steps - warmup, 1)))
    warmup, stable = max(1, config["warmup_steps"]), stable_steps(config)
    if step < stable:
        return min(s / warmup, 1.0)
    return max(0.0, (steps - step) / max(steps - stable, 1))


def distill(model: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
    """Train for config's steps; with build.resume (a TrainingState of the same student at fewer steps) continue it,
    and give the state before the cool-down to build.save_state."""
    ctx = build.ctx
    steps = config["steps"]
    method = config["method"]
    device = torch.device(ctx.device)
    model.to(device).train()
    arch.freeze_fixed_positions(model)
    teacher = ctx.teacher.to(device).eval() if "word" in method else None
    alpha, temperature = config["alpha"], config["temperature"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], betas=(0.9, 0.98), weight_decay=0.0)
    first = 0
    if build.resume is not None:
        first = build.resume.step
        model.load_state_dict(build.resume.model)
        optimizer.load_state_dict(build.resume.optimizer)
        if build.sparsifier is not None and build.resume.masks is not None:
            build.sparsifier.masks = [m.to(device) for m in build.resume.masks]
        if build.resume.rng is not None:
            torch.set_rng_state(build.resume.rng)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate(config, s), last_epoch=first - 1)
    batches = _batches(ctx, method, config["max_tokens"], build.seed, skip=first)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    stable = stable_steps(config)
    # The sparsity schedule's span: the training (linear), or the warm-up every budget shares (wsd), so that a
    # continued run prunes exactly as a longer one
    pruning = stable if config["schedule"] == "linear" else max(1, config["warmup_steps"])
    started, losses = time.perf_counter(), []
    for step in range(first + 1, steps + 1):
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
        if build.sparsifier is not None:
            build.sparsifier.step(step, pruning)
        losses.append(loss.item())
        if step % 100 == 0 or step == steps:
            ctx.log(f"distill step {step}/{steps} loss {sum(losses[-100:]) / len(losses[-100:]):.3f}")
        if step == stable and build.save_state is not None and config["schedule"] == "wsd":
            masks = [m.cpu().clone() for m in build.sparsifier.masks] if build.sparsifier is not None else None
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            optimizer_state = copy.deepcopy(optimizer.state_dict())
            build.save_state(TrainingState(step, state, optimizer_state, masks, torch.get_rng_state()))
    seconds = time.perf_counter() - started
    model.eval()
    trained = steps - first
    build.metrics["distill"] = {
        "steps": steps,
        "resumed_from": first,
        "seconds": round(seconds, 2),
        "steps_per_s": round(trained / seconds, 3) if trained else None,
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4) if losses else None,
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


def _batches(
    ctx: TeacherContext, method: str, max_tokens: int, seed: int, skip: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Seeded batches, epoch after epoch; `skip` passes over the first ones (a resumed run sees what follows)."""
    if "sequence" in method:
        src, tgt = ctx.teacher_translations()
    else:
        train = ctx.model_train
        src, tgt = encode_pairs(ctx.tokenizer, train.sources, train.references, MAX_LENGTH)
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]
    rng = random.Random(seed)
    while True:  # epochs, each in a new seeded order
        for ids in token_batches(lengths, max_tokens, rng):
            if skip > 0:
                skip -= 1
                continue
            yield collate(src, tgt, ids, ctx.tokenizer.pad_token_id)
