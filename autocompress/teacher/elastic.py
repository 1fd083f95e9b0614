"""A weight-shared (elastic) student: trained once per (teacher, data, space) so that every structure the space allows
is a good student already, to be sliced out and trained briefly by a trial.

As DynaBERT (Hou et al. 2020) and once-for-all / HAT: the teacher's heads and FFN neurons are first reordered by
importance, so that a narrower structure keeps the first ones; a shallower one keeps the most important layers (the
`layers` pass's importance strategy). Training on the teacher's translations follows the sandwich rule: every step
sums the loss of the largest structure, the smallest, and randomly drawn ones, each run by gating heads and neurons
and skipping layers in the one shared model. The result is the teacher's shape with its heads and neurons reordered
(recorded, so pruning passes and exports follow it), checkpointed as it trains and resumable.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autocompress.measure_lock import background_work
from autocompress.model import arch
from autocompress.model.batching import collate, token_batches
from autocompress.model.structure import prune_ffn, prune_heads, select_layers

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.teacher.context import TeacherContext

CHECKPOINT = "elastic-checkpoint.pt"


@dataclass(frozen=True)
class SubNet:
    encoder_layers: int
    decoder_layers: int
    heads_removed: float  # fraction of every block's heads removed (the same count in every block)
    ffn_keep: float


@dataclass(frozen=True)
class ElasticSettings:
    """The structures trained (ranges, from a search space) and how."""

    encoder_layers: tuple[int, int]
    decoder_layers: tuple[int, int]
    heads_removed: tuple[float, ...] = (0.0,)  # the fractions drawn from
    ffn_keep: tuple[float, ...] = (1.0,)
    steps: int = 4000
    max_tokens: int = 1500
    lr: float = 1e-3
    warmup_steps: int = 200
    random_structures: int = 1  # drawn each step besides the largest and the smallest (the sandwich rule)
    checkpoint_every: int = 100
    seed: int = 0

    def largest(self) -> SubNet:
        return SubNet(self.encoder_layers[1], self.decoder_layers[1], min(self.heads_removed), max(self.ffn_keep))

    def smallest(self) -> SubNet:
        return SubNet(self.encoder_layers[0], self.decoder_layers[0], max(self.heads_removed), min(self.ffn_keep))

    def draw(self, rng: random.Random) -> SubNet:
        return SubNet(
            rng.randint(*self.encoder_layers),
            rng.randint(*self.decoder_layers),
            rng.choice(self.heads_removed),
            rng.choice(self.ffn_keep),
        )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def cut_to(self, steps: int) -> ElasticSettings:
        """These settings trained `steps` steps (a budget's plan cut them): the warm-up at most a tenth of them, so
        a short run still spends most of its steps at the peak rate."""
        return dataclasses.replace(self, steps=steps, warmup_steps=min(self.warmup_steps, max(1, steps // 10)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ElasticSettings:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def reorder(model: PreTrainedModel, scores: dict[str, torch.Tensor]) -> None:
    """Heads and FFN neurons in decreasing teacher importance, in place (the model computes the same function)."""
    for block in arch.attention_blocks(model):
        origin = arch.layers(model, "encoder" if block.kind == "encoder_self" else "decoder")[block.layer]
        order = torch.argsort(scores[f"heads.{block.kind}.{origin.autocompress_origin}"], descending=True)
        prune_heads(block, order.tolist())
    for ffn in arch.ffn_blocks(model):
        origin = arch.layers(model, ffn.stack)[ffn.layer].autocompress_origin
        prune_ffn(ffn, torch.argsort(scores[f"neurons.{ffn.stack}.{origin}"], descending=True))


@contextmanager
def structure(model: PreTrainedModel, sub: SubNet, layer_scores: dict[str, list[float]]) -> Iterator[None]:
    """Run the reordered model as one of its structures: later heads and neurons gated off, layers skipped."""
    from autocompress.model.importance import _skip

    handles = []
    depth = {"encoder": sub.encoder_layers, "decoder": sub.decoder_layers}
    for stack in arch.STACKS:
        modules = list(arch.layers(model, stack))
        kept = select_layers(len(modules), depth[stack], "importance", layer_scores[stack])
        handles += [m.register_forward_hook(_skip, with_kwargs=True) for i, m in enumerate(modules) if i not in kept]
    for block in arch.attention_blocks(model):
        heads = block.num_heads - min(round(sub.heads_removed * block.num_heads), block.num_heads - 1)
        if heads < block.num_heads:
            gate = torch.zeros(block.num_heads * block.head_dim, device=model.device)
            gate[: heads * block.head_dim] = 1.0
            handles.append(getattr(block.module, block.o).register_forward_pre_hook(_gate(gate)))
    for ffn in arch.ffn_blocks(model):
        keep = max(1, round(sub.ffn_keep * ffn.width))
        if keep < ffn.width:
            gate = torch.zeros(ffn.width, device=model.device)
            gate[:keep] = 1.0
            handles.append(ffn.down.register_forward_pre_hook(_gate(gate)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _gate(gate: torch.Tensor) -> Callable[..., tuple[torch.Tensor]]:
    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        return (args[0] * gate,)

    return hook


def train_elastic(ctx: TeacherContext, settings: ElasticSettings, workdir: Path) -> PreTrainedModel:
    """Train the elastic student in workdir (checkpoints there; an interrupted run resumes where it stopped)."""
    scores = ctx.importance()
    model = copy.deepcopy(ctx.teacher).float()
    for stack in arch.STACKS:
        for index, layer in enumerate(arch.layers(model, stack)):
            layer.autocompress_origin = index
    reorder(model, scores)
    layer_scores = {stack: scores[f"layers.{stack}"].tolist() for stack in arch.STACKS}
    device = torch.device(ctx.device)
    model.to(device).train()
    arch.freeze_fixed_positions(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup, total = max(1, settings.warmup_steps), settings.steps

    def rate(step: int) -> float:  # warm-up, then cosine to a tenth of the peak
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    first, rng = 0, random.Random(settings.seed)
    checkpoint = workdir / CHECKPOINT
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["settings"] == settings.to_dict():
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            first = saved["step"]
            rng.setstate(saved["random"])
            torch.set_rng_state(saved["torch"])
            ctx.log(f"elastic student: resumed at step {first}")
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate, last_epoch=first - 1)
    src, tgt = ctx.teacher_translations()
    batches = _batches(src, tgt, settings, ctx.tokenizer.pad_token_id, skip=first)
    started, losses = time.perf_counter(), []
    # bf16 on a GPU, as distillation (passes.distill); full precision on a CPU
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    for step in range(first + 1, total + 1):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        structures = [settings.largest(), settings.smallest()]
        structures += [settings.draw(rng) for _ in range(settings.random_structures)]
        optimizer.zero_grad(set_to_none=True)
        step_losses = []
        with background_work(device.type):
            for sub in structures:
                with structure(model, sub, layer_scores), amp:
                    loss = model(**batch).loss
                (loss / len(structures)).backward()
                step_losses.append(loss.item())
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        schedule.step()
        losses.append(step_losses)
        if step % 50 == 0 or step == total:
            recent = losses[-50:]
            mean = [round(sum(x[i] for x in recent) / len(recent), 3) for i in range(2)]
            rate_s = (step - first) / (time.perf_counter() - started)
            ctx.log(f"elastic step {step}/{total}: loss largest {mean[0]}, smallest {mean[1]} ({rate_s:.2f} steps/s)")
        if step % settings.checkpoint_every == 0 or step == total:
            state = {
                "settings": settings.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "random": rng.getstate(),
                "torch": torch.get_rng_state(),
            }
            torch.save(state, checkpoint.with_suffix(".saving"))
            os.replace(checkpoint.with_suffix(".saving"), checkpoint)
    model.eval()
    return model


def _batches(
    src: list[list[int]], tgt: list[list[int]], settings: ElasticSettings, pad: int, skip: int
) -> Iterator[dict[str, torch.Tensor]]:
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]
    rng = random.Random(settings.seed)
    while True:
        for ids in token_batches(lengths, settings.max_tokens, rng):
            if skip > 0:
                skip -= 1
                continue
            yield collate(src, tgt, ids, pad)


def uses_elastic(space: Any) -> bool:
    dim = space.dimension("init", "source")
    return dim is not None and "elastic" in dim.values


def settings_from_space(space: Any, teacher_layers: dict[str, int]) -> ElasticSettings:
    """The structures a search space allows, as the elastic student's ranges; its `elastic:` section for how."""

    def values(name: str, default: tuple[Any, ...]) -> tuple[Any, ...]:
        dim = space.dimension(*name.split("."))
        if dim is None:
            return default
        if dim.kind == "fixed":
            return (dim.values[0],)
        if dim.kind in ("choice", "ordered"):
            return tuple(dim.values)
        low, high = dim.values
        if dim.kind == "int" or dim.step:
            step = dim.step or 1
            count = round((high - low) / step) + 1
            return tuple(round(low + i * step, 6) for i in range(count))
        return (low, high)

    def depth(stack: str) -> tuple[int, int]:
        dim = space.dimension("layers", f"{stack}_layers")
        found = (teacher_layers[stack],) if dim is None else dim.values
        bounds = [teacher_layers[stack] if v == "teacher" else min(int(v), teacher_layers[stack]) for v in found]
        return (min(bounds), max(bounds))

    base = ElasticSettings(depth("encoder"), depth("decoder"))
    return dataclasses.replace(
        base,
        heads_removed=values("heads.fraction", (0.0,)),
        ffn_keep=values("ffn.keep", (1.0,)),
        **space.elastic,
    )
