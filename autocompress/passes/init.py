"""Where a student starts: the teacher's own weights, or the elastic student trained for the space's structures
(autocompress.teacher.elastic), whose reordered heads and neurons the pruning passes after it then follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.passes.base import Param, Pass
from autocompress.passes.ffn import NEURONS_ATTR, original_neurons
from autocompress.passes.heads import mark_pruned, original_heads

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

SOURCES = ("teacher", "elastic")
PARAMS = (Param("source", "categorical", "teacher", "the weights a student is cut from", choices=SOURCES),)


class Init(Pass):
    name = "init"
    stage = "init"
    params = PARAMS
    structural = True  # an elastic start is not the teacher: it is trained

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("source", "teacher") == "teacher"

    def apply(self, subject: PreTrainedModel, config: PassConfig, ctx: PassContext | None) -> None:
        assert ctx is not None
        if self.is_noop(config.as_dict()):
            return
        if ctx.elastic is None:
            raise RuntimeError("this trial starts from the elastic student, but its context has none to give")
        take_weights(subject, ctx.elastic())


def take_weights(model: PreTrainedModel, source: PreTrainedModel) -> None:
    """Give `model` the weights of `source`, a model of the same shape, and the order of its heads and neurons."""
    with torch.no_grad():
        model.load_state_dict(source.state_dict())
    arch.share_fixed_positions(model)
    for mine, theirs in zip(arch.attention_blocks(model), arch.attention_blocks(source), strict=True):
        order = original_heads(theirs)
        if not torch.equal(order, torch.arange(len(order))):
            mark_pruned(mine.module, order)
    for mine, theirs in zip(arch.ffn_blocks(model), arch.ffn_blocks(source), strict=True):
        setattr(mine.down_owner, NEURONS_ATTR, original_neurons(theirs).clone())
