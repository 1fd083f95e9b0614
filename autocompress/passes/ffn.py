"""Structured FFN pruning: keep a fraction of each layer's intermediate neurons, the most important ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.model.structure import original_neurons, prune_ffn
from autocompress.passes.base import ModelPass, Param, TeacherLayers, percent

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig

PARAMS = (Param("keep", "float", 1.0, "fraction of FFN intermediate neurons kept in every layer", low=0.05, high=1.0),)


class FFN(ModelPass):
    name = "ffn"
    stage = "structure"
    params = PARAMS
    structural = True

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        return ("importance",)  # its cuts follow the teacher's importance scores

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        return f"FFN {percent(params.get('keep'))}"

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("keep", 1.0) >= 1.0

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        if not self.is_noop(config.as_dict()):
            keep_neurons(student, config, build)


def keep_neurons(model: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
    scores = build.ctx.importance()
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
