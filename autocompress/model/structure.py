"""The student's structure, changed in place and read back: heads, FFN neurons and layers kept, zeros counted.

The passes decide *what* to keep (passes/heads.py, ffn.py, layers.py); these helpers do the cutting, so the elastic
student (teacher/elastic.py), students loaded from disk (model/student.py) and the passes cut the same way. A pruned
block remembers which of the teacher's heads or neurons it holds, in order (`original_heads`, `original_neurons`).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from transformers.models.t5.modeling_t5 import T5Attention

from autocompress.model import arch
from autocompress.model.surgery import select_columns, select_rows

if TYPE_CHECKING:
    from transformers import PreTrainedModel


NEURONS_ATTR = "autocompress_neurons"


def original_neurons(block: arch.FFNBlock) -> torch.Tensor:
    """Which of the teacher's neurons a block still has, in its order (all, in order, until pruned or reordered)."""
    kept = getattr(block.down_owner, NEURONS_ATTR, None)
    return kept if kept is not None else torch.arange(block.width)


def prune_ffn(block: arch.FFNBlock, kept: torch.Tensor) -> None:
    """Keep the neurons at positions `kept`, in that order (a permutation of all of them reorders the block)."""
    origin = original_neurons(block)[kept]
    for name in block.up_names:
        setattr(block.up_owner, name, select_rows(getattr(block.up_owner, name), kept))
    setattr(block.down_owner, block.down_name, select_columns(block.down, kept))
    setattr(block.down_owner, NEURONS_ATTR, origin.clone())


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


def select_layers(total: int, keep: int, strategy: str, rises: list[float] | None = None) -> list[int]:
    """Teacher layer indices to keep, in their original order."""
    if strategy == "bottom":
        return list(range(keep))
    if strategy == "top":
        return list(range(total - keep, total))
    if strategy == "importance":
        assert rises is not None
        return sorted(sorted(range(total), key=lambda i: rises[i], reverse=True)[:keep])
    # Spaced so the top layer is always kept: it is the one the output projection (or the decoder) was trained on.
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def measured_sparsity(model: PreTrainedModel) -> float:
    """Zeros among the weights sparsity acts on, counted."""
    weights = [linear.weight for _, linear in arch.prunable_linears(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)
