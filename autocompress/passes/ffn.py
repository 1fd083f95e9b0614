"""Structured FFN pruning: keep a fraction of each layer's intermediate neurons, the most important ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.model.surgery import select_columns, select_rows
from autocompress.passes.base import Param, Pass

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

PARAMS = (Param("keep", "float", 1.0, "fraction of FFN intermediate neurons kept in every layer", low=0.05, high=1.0),)


class FFN(Pass):
    name = "ffn"
    stage = "structure"
    params = PARAMS
    structural = True

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("keep", 1.0) >= 1.0

    def apply(self, subject: PreTrainedModel, config: PassConfig, ctx: PassContext | None) -> None:
        assert ctx is not None
        if not self.is_noop(config.as_dict()):
            keep_neurons(subject, config, ctx)


def keep_neurons(model: PreTrainedModel, config: PassConfig, ctx: PassContext) -> None:
    scores = ctx.importance()
    for block in arch.ffn_blocks(model):
        origin = arch.layers(model, block.stack)[block.layer].autocompress_origin
        importance = scores[f"neurons.{block.stack}.{origin}"][original_neurons(block)]
        keep = max(1, round(config["keep"] * block.width))
        kept = torch.topk(importance, keep).indices.sort().values
        prune_ffn(block, kept)
    widths = {block.stack: block.width for block in arch.ffn_blocks(model)}
    if arch.family(model) == "t5":
        model.config.d_ff = widths["encoder"]
    else:
        model.config.encoder_ffn_dim, model.config.decoder_ffn_dim = widths["encoder"], widths["decoder"]


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
