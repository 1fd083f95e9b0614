"""Attention-head pruning: remove the least important heads structurally (smaller q/k/v/out projections).

Importance is the teacher's gate gradient (Michel et al., 2019), normalised per attention block so blocks compare.
Encoder self-attention, decoder self-attention and cross-attention are ranked separately, each losing its fraction
(the global `fraction` unless overridden); every block keeps at least one head. `allocation` says where the removed
heads come from: `global` ranks all blocks of a kind together (per-layer counts follow the scores), `uniform` removes
the same number from every block (its own least important ones): one head count per stack, as CTranslate2 requires.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from transformers.models.t5.modeling_t5 import T5Attention

from autocompress.model import arch
from autocompress.model.surgery import select_columns, select_rows
from autocompress.passes.base import Choices, Param, Pass, SpaceInfo

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

_KIND_HELP = "fraction of {} heads removed (null: the global fraction)"
PARAMS = (
    Param("fraction", "float", 0.0, "fraction of attention heads removed, in each attention kind", low=0.0, high=0.95),
    *(
        Param(kind, "float", None, _KIND_HELP.format(kind.replace("_", " ")), low=0.0, high=0.95, optional=True)
        for kind in arch.ATTENTION_KINDS
    ),
    Param(
        "allocation",
        "categorical",
        "global",
        "global: ranked across the blocks of a kind; uniform: the same count removed from every block",
        choices=("global", "uniform"),
    ),
)


class Heads(Pass):
    name = "heads"
    stage = "structure"
    params = PARAMS
    structural = True

    def is_noop(self, params: dict[str, Any]) -> bool:
        return not params.get("fraction") and not any(params.get(kind) for kind in arch.ATTENTION_KINDS)

    def constrain(self, chosen: Choices, space: SpaceInfo) -> None:
        if chosen.get("precision", {}).get("runtime") == "ctranslate2" and chosen[self.name]:
            chosen[self.name]["allocation"] = "uniform"  # CTranslate2 takes one head count per stack

    def apply(self, subject: PreTrainedModel, config: PassConfig, ctx: PassContext | None) -> None:
        assert ctx is not None
        if not self.is_noop(config.as_dict()):
            remove_heads(subject, config, ctx)


def remove_heads(model: PreTrainedModel, config: PassConfig, ctx: PassContext) -> None:
    fractions = {k: config[k] if config[k] is not None else config["fraction"] for k in arch.ATTENTION_KINDS}
    scores = ctx.importance()
    for kind, fraction in fractions.items():
        blocks = [b for b in arch.attention_blocks(model) if b.kind == kind]
        ranked = []
        for i, b in enumerate(blocks):
            stack = "encoder" if kind == "encoder_self" else "decoder"
            origin = arch.layers(model, stack)[b.layer].autocompress_origin
            s = scores[f"heads.{kind}.{origin}"][original_heads(b)]
            s = s / s.norm().clamp_min(1e-12)
            ranked += [(float(v), i, h) for h, v in enumerate(s)]
        if config["allocation"] == "uniform":
            quota = {i: min(round(fraction * b.num_heads), b.num_heads - 1) for i, b in enumerate(blocks)}
        else:
            quota = {i: b.num_heads - 1 for i, b in enumerate(blocks)}
        remove = sum(quota.values()) if config["allocation"] == "uniform" else round(fraction * len(ranked))
        dropped: dict[int, set[int]] = {i: set() for i in quota}
        for _, i, h in sorted(ranked):
            if remove == 0:
                break
            if len(dropped[i]) < quota[i]:
                dropped[i].add(h)
                remove -= 1
        for i, block in enumerate(blocks):
            if dropped[i]:
                prune_heads(block, [h for h in range(block.num_heads) if h not in dropped[i]])


def original_heads(block: arch.AttentionBlock) -> torch.Tensor:
    """Which of the teacher's heads a block still has (all of them until it is pruned)."""
    kept = getattr(block.module, "kept_heads", None)
    return kept if kept is not None else torch.arange(block.num_heads)


def prune_heads(block: arch.AttentionBlock, kept: list[int]) -> None:
    module, head_dim = block.module, block.head_dim
    origin = original_heads(block)[kept]
    index = torch.tensor(kept)
    features = (index[:, None] * head_dim + torch.arange(head_dim)).flatten()
    for name in (block.q, block.k, block.v):
        setattr(module, name, select_rows(getattr(module, name), features))
    setattr(module, block.o, select_columns(getattr(module, block.o), features))
    mark_pruned(module, origin)


def mark_pruned(module: torch.nn.Module, origin: torch.Tensor) -> None:
    if isinstance(module, T5Attention):
        if not isinstance(module, PrunedT5Attention):
            module.original_heads = module.n_heads
            module.__class__ = PrunedT5Attention  # same state, one more step in forward: see its docstring
        module.register_buffer("kept_heads", origin.clone(), persistent=False)
    else:
        module.num_heads = len(origin)  # BART-style attention reshapes with -1: the smaller projections suffice
        module.kept_heads = origin.clone()


class PrunedT5Attention(T5Attention):
    """T5 attention with some heads removed. T5 computes one relative position bias for all of a stack's layers, with
    the teacher's head count, in its first layer; every pruned layer passes the full bias on and uses its own rows.

    The arguments are found by name through T5Attention.forward's own signature, never by position: transformers
    renames and reorders them between releases (5.24 renamed `past_key_values` to `cache`)."""

    kept_heads: torch.Tensor
    original_heads: int

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:  # type: ignore[override]
        bound = inspect.signature(T5Attention.forward).bind(self, *args, **kwargs)
        given = bound.arguments
        full = given.get("position_bias")
        if full is None:
            full = self._full_bias(given["hidden_states"], given.get("key_value_states"), _cache_argument(given))
        given["position_bias"] = full.index_select(1, self.kept_heads.to(full.device))
        out = T5Attention.forward(*bound.args, **bound.kwargs)  # bound.args starts with self
        return (out[0], full, *out[2:])

    def _full_bias(
        self, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None, cache: Any
    ) -> torch.Tensor:
        query_length = hidden_states.shape[1]
        past = 0
        if key_value_states is not None:
            key_length = key_value_states.shape[1]
        else:
            past = cache.get_seq_length(self.layer_idx) if cache is not None else 0
            key_length = past + query_length
        if self.has_relative_attention_bias:
            return self.compute_bias(query_length, key_length, hidden_states.device, past_seen_tokens=past)
        shape = (1, self.original_heads, query_length, key_length)
        return torch.zeros(shape, device=hidden_states.device, dtype=hidden_states.dtype)


def _cache_argument(given: dict[str, Any]) -> Any:
    """The KV cache, under the name this transformers release gives it (`cache`, or `past_key_values` before 5.24,
    which later releases still take through **kwargs until 5.40)."""
    extra = given.get("kwargs") or {}
    for name in ("cache", "past_key_values"):
        if given.get(name) is not None:
            return given[name]
        if extra.get(name) is not None:
            return extra[name]
    return None
