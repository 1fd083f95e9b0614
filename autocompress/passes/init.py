"""Where a student starts: the teacher's own weights, or the elastic student trained for the space's structures
(autocompress.teacher.elastic), whose reordered heads and neurons the pruning passes after it then follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.model.structure import NEURONS_ATTR, mark_pruned, original_heads, original_neurons
from autocompress.passes.base import ModelPass, Param

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig

SOURCES = ("teacher", "elastic")
PARAMS = (Param("source", "categorical", "teacher", "the weights a student is cut from", choices=SOURCES),)


class Init(ModelPass):
    name = "init"
    stage = "init"
    params = PARAMS
    structural = True  # an elastic start is not the teacher: it is trained

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        # the elastic student is trained on the teacher's translations
        return ("teacher_translations", "elastic") if "elastic" in values.get("source", ()) else ()

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("source", "teacher") == "teacher"

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        if self.is_noop(config.as_dict()):
            return
        if build.ctx.elastic is None:
            raise RuntimeError("this trial starts from the elastic student, but its context has none to give")
        take_weights(student, build.ctx.elastic())


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
