"""Attention-head pruning: remove the least important heads structurally (smaller q/k/v/out projections).

Importance is the teacher's gate gradient (Michel et al., 2019), normalised per attention block so blocks compare.
Encoder self-attention, decoder self-attention and cross-attention are ranked separately, each losing its fraction
(the global `fraction` unless overridden); every block keeps at least one head. `allocation` says where the removed
heads come from: `global` ranks all blocks of a kind together (per-layer counts follow the scores), `uniform` removes
the same number from every block (its own least important ones): one head count per stack, as CTranslate2 requires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autocompress.model import arch
from autocompress.model.structure import original_heads, prune_heads
from autocompress.passes.base import Choices, ModelPass, Param, SpaceInfo, TeacherLayers, percent

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig

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


class Heads(ModelPass):
    name = "heads"
    stage = "structure"
    params = PARAMS
    structural = True

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        return ("importance",)  # its cuts follow the teacher's importance scores

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        return f"heads −{percent(params.get('fraction'))}"

    def is_noop(self, params: dict[str, Any]) -> bool:
        return not params.get("fraction") and not any(params.get(kind) for kind in arch.ATTENTION_KINDS)

    def constrain(self, chosen: Choices, space: SpaceInfo) -> None:
        if chosen.get("precision", {}).get("runtime") == "ctranslate2" and chosen[self.name]:
            chosen[self.name]["allocation"] = "uniform"  # CTranslate2 takes one head count per stack

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        if not self.is_noop(config.as_dict()):
            remove_heads(student, config, build)


def remove_heads(model: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
    fractions = {k: config[k] if config[k] is not None else config["fraction"] for k in arch.ATTENTION_KINDS}
    scores = build.ctx.importance()
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
