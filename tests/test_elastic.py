"""The elastic student: reordering keeps the teacher's function, and each structure it trains is exactly the student
the pruning passes cut from it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.model import arch
from autocompress.model.importance import ImportanceSettings
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.elastic import SubNet, reorder, structure

SENTENCES = ["In the beginning God created the heavens and the earth.", "Grace to you and peace."]
REFERENCES = ["En el principio crió Dios los cielos y la tierra.", "Gracia á vosotros y paz."]


def _logits(model, tokenizer) -> torch.Tensor:
    batch = dict(tokenizer(SENTENCES, text_target=REFERENCES, return_tensors="pt", padding=True))
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("family", ["marian", "t5"])
def test_each_trained_structure_is_the_student_the_passes_cut(
    family: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    teacher = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[family]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    ctx = TeacherContext(
        teacher,
        tokenizer,
        load_demo("dev").head(24),
        ArtifactCache(tmp_path / "cache"),
        importance_settings=ImportanceSettings(sentences=24, max_tokens=400, max_length=48),
    )
    scores = ctx.importance()
    elastic = copy.deepcopy(teacher)
    for stack in arch.STACKS:
        for index, layer in enumerate(arch.layers(elastic, stack)):
            layer.autocompress_origin = index
    reorder(elastic, scores)
    torch.testing.assert_close(_logits(elastic, tokenizer), _logits(teacher, tokenizer))  # the same function

    sub = SubNet(encoder_layers=1, decoder_layers=1, heads_removed=0.5, ffn_keep=0.5)
    layer_scores = {stack: scores[f"layers.{stack}"].tolist() for stack in arch.STACKS}
    with structure(elastic, sub, layer_scores):
        gated = _logits(elastic, tokenizer)
    recipe = Recipe.make(
        [
            ("init", {"source": "elastic"}),
            ("layers", {"encoder_layers": 1, "decoder_layers": 1, "strategy": "importance"}),
            ("heads", {"fraction": 0.5, "allocation": "uniform"}),
            ("ffn", {"keep": 0.5}),
        ]
    )
    ctx.elastic = lambda: elastic
    torch.testing.assert_close(_logits(build_student(recipe, ctx), tokenizer), gated)


def test_a_student_taken_from_an_elastic_student_has_one_position_table(tiny_models: dict[str, Path]) -> None:
    """An elastic student trained while transformers made Marian's sinusoids trainable carries two tables moved
    apart; a student cut from it gets the decoder's in both, so that CTranslate2 stores one."""
    from autocompress.passes.init import take_weights

    source = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    with torch.no_grad():
        source.model.encoder.embed_positions.weight.add_(0.1)
        source.model.decoder.embed_positions.weight.sub_(0.1)
    student = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    take_weights(student, source)
    decoder = source.model.decoder.embed_positions.weight
    assert torch.equal(student.model.decoder.embed_positions.weight, decoder)
    assert torch.equal(student.model.encoder.embed_positions.weight, decoder)
    other = dict(source.named_parameters())
    assert all(torch.equal(p, other[n]) for n, p in student.named_parameters() if "embed_positions" not in n)
