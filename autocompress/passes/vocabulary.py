"""Target-side vocabulary trimming: the output projection keeps only the target tokens the student may need.

Kept: every token the training data's references or the teacher's translations of them use at least `min_count`
times, and every special and language token. Per generated token the output projection costs d_model × vocabulary
multiply-adds — for the demo teacher as much as two of its three decoder layers — so this is a lever on the decoder's
cost that needs no training (autocompress.model.vocabulary has the surgery). It runs after training, on the trained
student, and for a student that keeps the teacher's weights too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autocompress.model.vocabulary import trim_target
from autocompress.passes.base import Choices, Param, Pass, SpaceInfo
from autocompress.task import special_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

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


class Vocabulary(Pass):
    name = "vocabulary"
    stage = "vocabulary"
    params = PARAMS

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("keep", "all") == "all"

    def wanted(self, chosen: Choices, space: SpaceInfo) -> bool:
        return True  # no training needed: the teacher's own weights are trimmed as well as a student's

    def apply(self, subject: PreTrainedModel, config: PassConfig, ctx: PassContext | None) -> None:
        assert ctx is not None
        if self.is_noop(config.as_dict()):
            return
        counts = target_token_counts(ctx)
        used = (counts >= config["min_count"]).nonzero().flatten().tolist()
        kept = trim_target(subject, set(used) | special_ids(ctx.tokenizer))
        ctx.metrics["vocabulary"] = {"kept": len(kept), "of": len(counts)}


def target_token_counts(ctx: PassContext) -> torch.Tensor:
    """How often each target id occurs in the training references and in the teacher's translations of them; built
    once per (teacher, data, translation settings) and cached like the other teacher artifacts."""

    def build() -> dict[str, torch.Tensor]:
        _, translations = ctx.teacher_translations()
        references = ctx.tokenizer(text_target=list(ctx.train.references), truncation=True, max_length=512)
        size = ctx.teacher.get_output_embeddings().out_features
        counts = torch.zeros(size, dtype=torch.int64)
        for rows in (translations, references["input_ids"]):
            flat = torch.tensor([t for row in rows for t in row], dtype=torch.int64)
            counts += torch.bincount(flat[flat < size], minlength=size)
        return {"counts": counts.to(torch.int32)}

    return ctx.cached("target_token_counts", ctx.translations_key(), build)["counts"]
