"""Target-side vocabulary trimming: the output projection keeps only the target tokens the student may need.

Kept: every token the training data's references or the teacher's translations of them use at least `min_count`
times, and every special and language token. Per generated token the output projection costs d_model × vocabulary
multiply-adds — for the demo teacher as much as two of its three decoder layers — so this is a lever on the decoder's
cost that needs no training (autocompress.model.vocabulary has the surgery). It runs after training, on the trained
student, and for a student that keeps the teacher's weights too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autocompress.model.vocabulary import trim_target
from autocompress.passes.base import Choices, ModelPass, Param, SpaceInfo, TeacherLayers
from autocompress.task import special_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig

KEEP = ("all", "used")
PARAMS = (
    Param("keep", "categorical", "all", "all: the whole target vocabulary; used: what the data uses", choices=KEEP),
    Param(
        "min_count",
        "int",
        1,
        "used: a token is kept when the references and the teacher's translations of the training data use it at "
        "least this often (1: every token they use)",
        low=1,
        high=1000,
        log=True,
        when=(("keep", ("used",)),),
    ),
)


class Vocabulary(ModelPass):
    name = "vocabulary"
    stage = "vocabulary"
    params = PARAMS

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        # trimming keeps the tokens the translations and references use, counted once
        return ("teacher_translations", "target_token_counts") if "used" in values.get("keep", ()) else ()

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        return f"vocab ≥{params.get('min_count', 1)}" if params.get("keep") == "used" else None

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("keep", "all") == "all"

    def wanted(self, chosen: Choices, space: SpaceInfo) -> bool:
        return True  # no training needed: the teacher's own weights are trimmed as well as a student's

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        if self.is_noop(config.as_dict()):
            return
        counts = build.ctx.target_token_counts()
        used = (counts >= config["min_count"]).nonzero().flatten().tolist()
        kept = trim_target(student, set(used) | special_ids(build.ctx.tokenizer))
        build.metrics["vocabulary"] = {"kept": len(kept), "of": len(counts)}
