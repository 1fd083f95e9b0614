"""Layer reduction: keep k of N encoder layers and m of M decoder layers, initialised from the teacher's layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autocompress.model import arch
from autocompress.model.structure import select_layers
from autocompress.passes.base import Choices, ModelPass, Param, RecipeError, SpaceInfo, TeacherLayers

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig

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


class Layers(ModelPass):
    name = "layers"
    stage = "structure"
    params = PARAMS
    structural = True

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        return ("importance",)  # its cuts follow the teacher's importance scores

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        whole = layers or ("all", "all")
        kept = [params.get(f"{stack}_layers") or whole[i] for i, stack in enumerate(("encoder", "decoder"))]
        return f"{kept[0]}+{kept[1]} layers"

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("encoder_layers") is None and params.get("decoder_layers") is None

    def constrain(self, chosen: Choices, space: SpaceInfo) -> None:
        for stack in arch.STACKS:  # all kept: the same recipe as not naming it
            if chosen[self.name].get(f"{stack}_layers") == space.teacher_layers[stack]:
                chosen[self.name][f"{stack}_layers"] = None

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        keep_layers(student, config, build)


def keep_layers(model: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
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
            scores = build.ctx.importance()[f"layers.{stack}"]
            rises = [float(scores[layer.autocompress_origin]) for layer in current]
        kept = select_layers(len(current), keep, config["strategy"], rises)
        arch.set_layers(model, stack, [current[i] for i in kept])
