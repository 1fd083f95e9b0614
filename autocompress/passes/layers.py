"""Layer reduction: keep k of N encoder layers and m of M decoder layers, initialised from the teacher's layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autocompress.model import arch
from autocompress.passes.base import Choices, Param, Pass, RecipeError, SpaceInfo

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

STRATEGIES = ("even", "bottom", "top", "importance")
PARAMS = (
    Param("encoder_layers", "int", None, "encoder layers kept (null keeps all)", low=1, high=64, optional=True),
    Param("decoder_layers", "int", None, "decoder layers kept (null keeps all)", low=1, high=64, optional=True),
    Param(
        "strategy",
        "categorical",
        "even",
        "which teacher layers initialise the kept ones: evenly spaced ending at the top layer, the bottom ones, "
        "the top ones, or those whose removal raises the training loss most",
        choices=STRATEGIES,
    ),
)


def select(total: int, keep: int, strategy: str, rises: list[float] | None = None) -> list[int]:
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


class Layers(Pass):
    name = "layers"
    stage = "structure"
    params = PARAMS
    structural = True

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("encoder_layers") is None and params.get("decoder_layers") is None

    def constrain(self, chosen: Choices, space: SpaceInfo) -> None:
        for stack in arch.STACKS:  # all kept: the same recipe as not naming it
            if chosen[self.name].get(f"{stack}_layers") == space.teacher_layers[stack]:
                chosen[self.name][f"{stack}_layers"] = None

    def apply(self, subject: PreTrainedModel, config: PassConfig, ctx: PassContext | None) -> None:
        assert ctx is not None
        keep_layers(subject, config, ctx)


def keep_layers(model: PreTrainedModel, config: PassConfig, ctx: PassContext) -> None:
    for stack in arch.STACKS:
        keep = config[f"{stack}_layers"]
        current = list(arch.layers(model, stack))
        if keep is None or keep == len(current):
            continue
        if keep > len(current):
            raise RecipeError(
                f"pass 'layers' parameter '{stack}_layers' = {keep} is invalid: allowed int in [1, {len(current)}] "
                f"(the model has {len(current)} {stack} layers)"
            )
        rises = None
        if config["strategy"] == "importance":
            scores = ctx.importance()[f"layers.{stack}"]
            rises = [float(scores[layer.autocompress_origin]) for layer in current]
        kept = select(len(current), keep, config["strategy"], rises)
        arch.set_layers(model, stack, [current[i] for i in kept])
