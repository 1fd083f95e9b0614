"""A student whose output vocabulary is a subset of the teacher's: the rows of the output projection (and of the
decoder's input embedding, which only ever reads tokens the decoder wrote) kept for the target tokens it may emit.

The trimmed model works in its own id space on the decoder side: new id i is old id `target_ids[i]`. Its config and
generation config speak that space too (decoder start, eos, pad, forced and suppressed tokens), so generate(), the
exporters and the runtime loops run it unchanged; only turning output ids into text maps them back
(`to_teacher_ids`), through the tokenizer, which is never changed. The encoder keeps the whole source vocabulary.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TARGET_IDS_ATTR = "autocompress_target_ids"  # new id → the teacher's id, on a trimmed model
_CONFIG_IDS = ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id", "forced_bos_token_id",
               "forced_eos_token_id")  # fmt: skip


def target_ids(model: PreTrainedModel) -> list[int] | None:
    """The teacher's id of each output row of a trimmed model; None for a model with the whole vocabulary."""
    found = getattr(model, TARGET_IDS_ATTR, None)
    return list(found) if found is not None else None


def special_target_ids(model: PreTrainedModel) -> set[int]:
    """The ids the model's configs name (decoder start, eos, pad, forced tokens): a trimmed model keeps them all."""
    found: set[int] = set()
    for config in (model.config, model.generation_config):
        for name in _CONFIG_IDS:
            value = getattr(config, name, None) if config is not None else None
            found |= set(value) if isinstance(value, list) else ({value} if isinstance(value, int) else set())
    return found


def trim_target(model: PreTrainedModel, kept: Iterable[int]) -> list[int]:
    """Keep only these target ids (the configs' special ids are always kept), in place; returns the kept ids in order:
    new id i is the teacher's id ids[i]."""
    if target_ids(model) is not None:
        raise ValueError("this model's output vocabulary is trimmed already")
    ids = sorted(set(int(i) for i in kept) | special_target_ids(model))
    vocabulary = model.get_output_embeddings().out_features
    if ids[0] < 0 or ids[-1] >= vocabulary:
        raise ValueError(f"target ids must lie in [0, {vocabulary}); got {ids[0]}..{ids[-1]}")
    resize_target(model, ids)
    _remap_configs(model, {old: new for new, old in enumerate(ids)})
    return ids


def resize_target(model: PreTrainedModel, rows: Sequence[int]) -> None:
    """Keep these rows of the output projection, its bias and the decoder's input embedding (the shapes only: a
    loaded student gets its configs as saved)."""
    index = torch.tensor(list(rows), dtype=torch.long)
    decoder = model.get_decoder()
    old_embedding, old_output = decoder.embed_tokens, model.get_output_embeddings()
    tied = old_output.weight is old_embedding.weight
    embedding = copy.deepcopy(old_embedding)  # keeps the family's subclass (scaled embeddings) and its settings
    embedding.weight = nn.Parameter(old_embedding.weight.detach()[index].clone())
    embedding.num_embeddings = len(index)
    if embedding.padding_idx is not None:
        found = (index == embedding.padding_idx).nonzero()
        embedding.padding_idx = int(found[0, 0]) if len(found) else None
    decoder.embed_tokens = embedding
    output = nn.Linear(old_output.in_features, len(index), bias=old_output.bias is not None)
    output.weight = embedding.weight if tied else nn.Parameter(old_output.weight.detach()[index].clone())
    if old_output.bias is not None:
        output.bias = nn.Parameter(old_output.bias.detach()[index].clone())
    model.set_output_embeddings(output.to(old_output.weight.device, old_output.weight.dtype))
    bias = getattr(model, "final_logits_bias", None)  # Marian, MBart: added to the logits
    if bias is not None:
        model.register_buffer("final_logits_bias", bias[:, index].clone(), persistent=True)
    setattr(model, TARGET_IDS_ATTR, list(rows))


def _remap_configs(model: PreTrainedModel, new: dict[int, int]) -> None:
    def one(value: Any) -> Any:
        if isinstance(value, list):
            return [new[v] for v in value if v in new]
        return new.get(value) if isinstance(value, int) else value

    for config in (model.config, model.generation_config):
        if config is None:
            continue
        for name in _CONFIG_IDS:
            if getattr(config, name, None) is not None:
                setattr(config, name, one(getattr(config, name)))
    generation = model.generation_config
    if generation is not None:
        if generation.bad_words_ids:
            generation.bad_words_ids = [[new[w[0]]] for w in generation.bad_words_ids if len(w) == 1 and w[0] in new]
        for name in ("suppress_tokens", "begin_suppress_tokens"):
            if getattr(generation, name, None):
                setattr(generation, name, [new[t] for t in getattr(generation, name) if t in new])


def to_teacher_ids(rows: Iterable[Sequence[int]], ids: Sequence[int] | None) -> list[list[int]]:
    """Output rows of a trimmed model in the teacher's (the tokenizer's) ids; rows as they are for a whole one."""
    if ids is None:
        return [[int(t) for t in row] for row in rows]
    return [[ids[int(t)] for t in row] for row in rows]
