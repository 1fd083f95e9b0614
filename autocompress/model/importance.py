"""Importance of heads, FFN neurons and layers, scored once per teacher on training data.

Heads and neurons: the first-order estimate of Michel et al. (2019), |∂L/∂ξ| for a gate ξ = 1 multiplying each head's
output (the input of the attention's output projection) or each neuron's activation (the input of the FFN's down
projection), summed over batches. Layers: the rise of the loss when the layer is skipped (its output replaced by its
input), since a gate gradient says little about removing a whole residual block.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from autocompress.measure_lock import background_work
from autocompress.model import arch
from autocompress.model.batching import collate, encode_pairs, token_batches

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.data import ParallelCorpus


@dataclass(frozen=True)
class ImportanceSettings:
    sentences: int = 512
    max_tokens: int = 2000
    max_length: int = 128
    seed: int = 0


def score_importance(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, corpus: ParallelCorpus, settings: ImportanceSettings
) -> dict[str, torch.Tensor]:
    """Keys: heads.<kind>.<layer> (one score a head), neurons.<stack>.<layer>, layers.<stack> (one score a layer)."""
    sample = corpus.head(settings.sentences)
    src, tgt = encode_pairs(tokenizer, sample.sources, sample.references, settings.max_length)
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]
    batches = [
        collate(src, tgt, ids, tokenizer.pad_token_id)
        for ids in token_batches(lengths, settings.max_tokens, random.Random(settings.seed))
    ]
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        scores = _gate_gradients(model, batches)
        for stack in arch.STACKS:
            scores[f"layers.{stack}"] = _skip_losses(model, batches, stack)
    finally:
        for p, r in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(r)
        model.train(was_training)
    return scores


def _gate_gradients(model: PreTrainedModel, batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    gates: dict[str, torch.Tensor] = {}
    handles = []
    for block in arch.attention_blocks(model):
        gate = gates[f"heads.{block.kind}.{block.layer}"] = torch.ones(block.num_heads, requires_grad=True)
        handles.append(getattr(block.module, block.o).register_forward_pre_hook(_head_gate(gate, block.head_dim)))
    for ffn in arch.ffn_blocks(model):
        gate = gates[f"neurons.{ffn.stack}.{ffn.layer}"] = torch.ones(ffn.width, requires_grad=True)
        handles.append(ffn.down.register_forward_pre_hook(lambda _m, args, g=gate: (args[0] * g,)))
    try:
        totals = {k: torch.zeros_like(g) for k, g in gates.items()}
        for batch in batches:
            with background_work(model.device.type):  # a measurement elsewhere pauses scoring between batches
                model(**batch).loss.backward()
            for k, g in gates.items():
                totals[k] += g.grad.abs()
                g.grad = None
    finally:
        for h in handles:
            h.remove()
    return totals


def _head_gate(gate: torch.Tensor, head_dim: int) -> Any:
    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        return (args[0] * gate.repeat_interleave(head_dim),)

    return hook


@torch.no_grad()
def _skip_losses(model: PreTrainedModel, batches: list[dict[str, torch.Tensor]], stack: arch.Stack) -> torch.Tensor:
    def loss() -> float:
        total = 0.0
        for batch in batches:
            with background_work(model.device.type):
                total += float(model(**batch).loss)
        return total / len(batches)

    base = loss()
    rises = []
    for layer in arch.layers(model, stack):
        handle = layer.register_forward_hook(_skip, with_kwargs=True)
        try:
            rises.append(loss() - base)
        finally:
            handle.remove()
    return torch.tensor(rises)


def _skip(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
    hidden = args[0] if args else kwargs["hidden_states"]
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
