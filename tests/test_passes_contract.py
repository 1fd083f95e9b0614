"""Every pass over tiny Marian, MBart, M2M100 and T5 models: what must change, what must not, save → load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.model import arch
from autocompress.model.importance import ImportanceSettings
from autocompress.model.structure import measured_sparsity
from autocompress.model.student import load_student, save_student
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.translations import TranslationSettings

from .conftest import FAMILIES

SENTENCES = ["In the beginning God created the heavens and the earth.", "Grace to you and peace."]
REFERENCES = ["En el principio crió Dios los cielos y la tierra.", "Gracia á vosotros y paz."]


@dataclass
class Case:
    id: str
    passes: list[tuple[str, dict[str, Any]]]
    check: Callable[[Any, Any, dict], None]
    no_op: bool = False


def _heads(model: Any, kind: str) -> list[int]:
    return [b.num_heads for b in arch.attention_blocks(model) if b.kind == kind]


def _fewer_parameters(student: Any, teacher: Any, _metrics: dict) -> None:
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())


def _check_layers(student: Any, teacher: Any, metrics: dict) -> None:
    assert [len(arch.layers(student, s)) for s in arch.STACKS] == [1, 1]
    _fewer_parameters(student, teacher, metrics)


def _check_heads(student: Any, teacher: Any, metrics: dict) -> None:
    for kind in arch.ATTENTION_KINDS:
        assert sum(_heads(student, kind)) == sum(_heads(teacher, kind)) // 2
        assert min(_heads(student, kind)) >= 1
    for block in arch.attention_blocks(student):
        assert getattr(block.module, block.q).out_features == block.num_heads * block.head_dim
    _fewer_parameters(student, teacher, metrics)


def _check_uniform_heads(student: Any, teacher: Any, metrics: dict) -> None:
    _check_heads(student, teacher, metrics)
    for kind in arch.ATTENTION_KINDS:
        assert set(_heads(student, kind)) == {_heads(teacher, kind)[0] // 2}


def _check_ffn(student: Any, teacher: Any, metrics: dict) -> None:
    assert {b.width for b in arch.ffn_blocks(student)} == {b.width // 2 for b in arch.ffn_blocks(teacher)}
    _fewer_parameters(student, teacher, metrics)


def _sparsity_is(target: float) -> Callable[[Any, Any, dict], None]:
    def check(student: Any, _teacher: Any, metrics: dict) -> None:
        assert abs(measured_sparsity(student) - target) <= 0.01
        assert metrics["sparsity"] == pytest.approx(measured_sparsity(student), abs=1e-5)

    return check


def _trained(student: Any, teacher: Any, metrics: dict) -> None:
    assert metrics["distill"]["steps"] == 5
    changed = [not torch.equal(a, b) for a, b in zip(student.parameters(), teacher.parameters(), strict=True)]
    assert any(changed)
    # Sinusoidal position tables (Marian's) are a formula: training leaves them as the teacher has them.
    taught = dict(teacher.named_parameters())
    fixed = [
        f"{prefix}.{name}"
        for prefix, module in student.named_modules()
        if type(module).__name__.endswith("SinusoidalPositionalEmbedding")
        for name, _ in module.named_parameters()
    ]
    assert fixed or arch.family(student) != "marian"
    assert all(torch.equal(student.get_parameter(name), taught[name]) for name in fixed), fixed


def _unchanged(*_args: Any) -> None:
    pass


CASES = [
    Case("layers-noop", [("layers", {})], _unchanged, no_op=True),
    Case("heads-noop", [("heads", {"fraction": 0.0})], _unchanged, no_op=True),
    Case("ffn-noop", [("ffn", {"keep": 1.0})], _unchanged, no_op=True),
    Case("sparsity-noop", [("sparsity", {"target": 0.0})], _unchanged, no_op=True),
    Case("distill-noop", [("distill", {"steps": 0})], _unchanged, no_op=True),
    Case("layers-top", [("layers", {"encoder_layers": 1, "decoder_layers": 1, "strategy": "top"})], _check_layers),
    Case(
        "layers-importance",
        [("layers", {"encoder_layers": 1, "decoder_layers": 1, "strategy": "importance"})],
        _check_layers,
    ),
    Case("heads-half", [("heads", {"fraction": 0.5})], _check_heads),
    Case("heads-uniform", [("heads", {"fraction": 0.5, "allocation": "uniform"})], _check_uniform_heads),
    Case("ffn-half", [("ffn", {"keep": 0.5})], _check_ffn),
    Case("sparsity-global", [("sparsity", {"target": 0.5})], _sparsity_is(0.5)),
    Case("sparsity-per-layer", [("sparsity", {"target": 0.3, "scope": "per_layer"})], _sparsity_is(0.3)),
    Case(
        "sparsity-during-kd", [("sparsity", {"target": 0.6, "every": 2}), ("distill", {"steps": 8})], _sparsity_is(0.6)
    ),
    Case("distill-word", [("distill", {"steps": 5, "max_tokens": 300})], _trained),
    Case("distill-sequence", [("distill", {"steps": 5, "method": "sequence", "max_tokens": 300})], _trained),
    Case(
        "all",
        [
            ("layers", {"decoder_layers": 1}),
            ("heads", {"fraction": 0.5}),
            ("ffn", {"keep": 0.5}),
            ("sparsity", {"target": 0.5}),
            ("distill", {"steps": 3, "max_tokens": 300}),
        ],
        _fewer_parameters,
    ),
]
# Passes whose contract needs more than a tiny teacher and a recipe (an elastic student, the teacher's translations,
# an exported artifact): their own files test them.
TESTED_ELSEWHERE = {
    "init": "tests/test_elastic.py",
    "vocabulary": "tests/test_vocabulary.py",
    "precision": "tests/test_onnx_export.py, tests/test_families.py",
    "shortlist": "tests/test_vocabulary.py",
}


def test_every_registered_pass_has_a_case() -> None:
    """A new pass is registered with a case here (or a file of its own named in TESTED_ELSEWHERE): none goes
    untested through the contract."""
    from autocompress.passes import PASSES

    covered = {name for case in CASES for name, _ in case.passes} | set(TESTED_ELSEWHERE)
    assert set(PASSES) <= covered, f"registered passes without a contract case: {sorted(set(PASSES) - covered)}"


@pytest.fixture(scope="module")
def contexts(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, TeacherContext]:
    cache = ArtifactCache(tmp_path_factory.mktemp("cache"))
    train = load_demo("dev").head(48)
    found = {}
    for family in FAMILIES:
        teacher = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[family]).eval()
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
        found[family] = TeacherContext(
            teacher,
            tokenizer,
            train,
            cache,
            translation_settings=TranslationSettings(sentences=24, runtime="pytorch"),
            importance_settings=ImportanceSettings(sentences=24, max_tokens=400, max_length=48),
        )
    return found


def _inputs(tokenizer: Any) -> dict[str, torch.Tensor]:
    return dict(tokenizer(SENTENCES, text_target=REFERENCES, return_tensors="pt", padding=True))


@torch.no_grad()
def _outputs(model: Any, tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _inputs(tokenizer)
    labels = batch.pop("labels")
    logits = model(**batch, labels=labels).logits
    tokens = model.generate(**batch, max_new_tokens=6, num_beams=1, do_sample=False, **arch.generate_kwargs(model))
    return logits, tokens


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pass_contract(case: Case, family: str, contexts: dict[str, TeacherContext], tmp_path: Path) -> None:
    ctx, metrics = contexts[family], {}
    teacher_before = {k: v.clone() for k, v in ctx.teacher.state_dict().items()}
    teacher_logits, teacher_tokens = _outputs(ctx.teacher, ctx.tokenizer)
    recipe = Recipe.make(case.passes, seed=3)
    student = build_student(recipe, ctx, metrics)

    case.check(student, ctx.teacher, metrics)
    logits, tokens = _outputs(student, ctx.tokenizer)
    assert logits.shape == teacher_logits.shape
    if case.no_op:
        assert torch.equal(logits, teacher_logits)
        assert torch.equal(tokens, teacher_tokens)
    assert all(torch.equal(v, ctx.teacher.state_dict()[k]) for k, v in teacher_before.items()), "teacher modified"

    loaded = load_student(save_student(student, ctx.tokenizer, tmp_path / "student", {"id": recipe.id}))
    loaded_logits, loaded_tokens = _outputs(loaded, ctx.tokenizer)
    assert torch.equal(loaded_logits, logits)
    assert torch.equal(loaded_tokens, tokens)


def _masked_teacher_logits(ctx: TeacherContext, student: Any) -> torch.Tensor:
    """The teacher's logits with exactly what the student dropped switched off: heads and neurons gated to zero,
    layers skipped. Structured pruning must reproduce this, whatever the family."""
    from autocompress.model.importance import _skip
    from autocompress.model.structure import original_heads

    teacher, handles = ctx.teacher, []
    kept_heads = {(b.kind, b.layer): original_heads(b) for b in arch.attention_blocks(student)}
    origin = {s: [layer.autocompress_origin for layer in arch.layers(student, s)] for s in arch.STACKS}
    for stack in arch.STACKS:
        for index, layer in enumerate(arch.layers(teacher, stack)):
            if index not in origin[stack]:
                handles.append(layer.register_forward_hook(_skip, with_kwargs=True))
    for block in arch.attention_blocks(teacher):
        stack = "encoder" if block.kind == "encoder_self" else "decoder"
        if block.layer not in origin[stack]:
            continue
        gate = torch.zeros(block.num_heads)
        gate[kept_heads[(block.kind, origin[stack].index(block.layer))]] = 1.0
        gate = gate.repeat_interleave(block.head_dim)
        handles.append(getattr(block.module, block.o).register_forward_pre_hook(lambda _m, a, g=gate: (a[0] * g,)))
    for block, kept in zip(arch.ffn_blocks(teacher), _kept_neurons(teacher, student), strict=True):
        if kept is not None:
            gate = torch.zeros(block.width)
            gate[kept] = 1.0
            handles.append(block.down.register_forward_pre_hook(lambda _m, a, g=gate: (a[0] * g,)))
    try:
        return _outputs(teacher, ctx.tokenizer)[0]
    finally:
        for h in handles:
            h.remove()


def _kept_neurons(teacher: Any, student: Any) -> list[torch.Tensor | None]:
    """Which teacher neurons each student FFN kept, found by matching the rows of the down projection."""
    found: list[torch.Tensor | None] = []
    students = {
        (b.stack, arch.layers(student, b.stack)[b.layer].autocompress_origin): b for b in arch.ffn_blocks(student)
    }
    for block in arch.ffn_blocks(teacher):
        mine = students.get((block.stack, block.layer))
        if mine is None:
            found.append(None)
            continue
        columns = block.down.weight.T  # one row per teacher neuron
        found.append(torch.tensor([int((columns == c).all(1).nonzero()[0]) for c in mine.down.weight.T]))
    return found


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "passes",
    [
        [("layers", {"encoder_layers": 1, "decoder_layers": 1, "strategy": "top"})],
        [("layers", {"decoder_layers": 1, "strategy": "bottom"})],
        [("heads", {"fraction": 0.5})],
        [("heads", {"encoder_self": 0.25, "decoder_self": 0.0, "cross": 0.75})],
        [("heads", {"fraction": 0.5, "allocation": "uniform"})],
        [("ffn", {"keep": 0.4})],
        [("layers", {"encoder_layers": 1}), ("heads", {"fraction": 0.5}), ("ffn", {"keep": 0.5})],
    ],
    ids=["layers-top", "layers-bottom", "heads", "heads-per-kind", "heads-uniform", "ffn", "combined"],
)
def test_structured_pruning_equals_masking_the_teacher(
    passes: list[tuple[str, dict[str, Any]]], family: str, contexts: dict[str, TeacherContext]
) -> None:
    ctx = contexts[family]
    student = build_student(Recipe.make(passes), ctx)
    torch.testing.assert_close(_outputs(student, ctx.tokenizer)[0], _masked_teacher_logits(ctx, student))


@pytest.mark.parametrize("family", ["marian", "t5"])
def test_cli_evaluates_a_pruned_student(
    family: str, contexts: dict[str, TeacherContext], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from autocompress.cli import main

    ctx = contexts[family]
    student = build_student(Recipe.make([("layers", {"encoder_layers": 1}), ("heads", {"fraction": 0.5})]), ctx)
    directory = save_student(student, ctx.tokenizer, tmp_path / "student")
    (tmp_path / "d.tsv").write_text("".join(f"{s}\t{r}\n" for s, r in zip(SENTENCES, REFERENCES, strict=True)))
    assert main(["evaluate", "--model", str(directory), "--tsv", str(tmp_path / "d.tsv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentences"] == 2
    assert result["bleu_signature"].startswith("nrefs:1|")
