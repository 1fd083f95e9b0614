"""Target-side vocabulary trimming over every family and runtime: a trimmed model whose kept tokens cover what the
whole one generates translates exactly as the whole one — in PyTorch, in every artifact, and after a save and load —
and its artifact is smaller; the pass keeps what the training data and the teacher's translations use."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.demo.families import FAMILIES, build_family
from autocompress.export.ctranslate2 import export_ctranslate2
from autocompress.export.onnx import export_onnx
from autocompress.model.load import load_model
from autocompress.model.student import load_student, save_student
from autocompress.model.translate import generate_ids, translate_texts
from autocompress.model.vocabulary import target_ids, trim_target
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.runtime import open_artifact
from autocompress.task import special_ids
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.translations import TranslationSettings

SENTENCES = list(load_demo("dev").sources[:12])
MAX_NEW = 12


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root, corpus = tmp_path_factory.mktemp("families"), load_demo("dev")
    return {family: build_family(family, root / family, corpus, weight_std=1.0) for family in FAMILIES}


def _export(runtime: str, model: Any, tokenizer: Any, task: Any, directory: Path) -> Path:
    if runtime == "onnxruntime":
        return export_onnx(model, tokenizer, directory, task=task)
    return export_ctranslate2(model, tokenizer, directory, quantization="float32", task=task)


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.suffix in (".onnx", ".bin"))


def _weights(graph: Any) -> int:
    """Weight elements of a (merged) graph: its own initializers, every If branch's shape constants aside."""
    import onnx

    return sum(onnx.numpy_helper.to_array(i).size for i in graph.graph.initializer)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_trimmed_model_translates_as_the_whole_one(family: str, family_dirs: dict[str, Path], tmp_path: Path):
    loaded = load_model(str(family_dirs[family]))
    model, tokenizer, task = loaded.model, loaded.tokenizer, loaded.task
    whole = translate_texts(model, tokenizer, SENTENCES, max_length=MAX_NEW, batch_size=4, task=task)
    rows = generate_ids(model, tokenizer, SENTENCES, max_length=MAX_NEW, batch_size=4, task=task)
    vocabulary = model.get_output_embeddings().out_features
    others = random.Random(0).sample(range(vocabulary), vocabulary // 4)  # kept besides: not only what is produced
    trimmed = copy.deepcopy(model)
    kept = trim_target(trimmed, {t for row in rows for t in row} | set(others) | special_ids(tokenizer))
    assert trimmed.get_output_embeddings().out_features == len(kept) < vocabulary
    assert trimmed.get_input_embeddings().num_embeddings == model.get_input_embeddings().num_embeddings
    assert translate_texts(trimmed, tokenizer, SENTENCES, max_length=MAX_NEW, batch_size=4, task=task) == whole

    save_student(trimmed, tokenizer, tmp_path / "student")
    reloaded = load_student(tmp_path / "student")
    assert target_ids(reloaded) == kept
    assert translate_texts(reloaded, tokenizer, SENTENCES, max_length=MAX_NEW, batch_size=4, task=task) == whole

    for runtime in ["onnxruntime", "ctranslate2"] if family.startswith("marian") else ["onnxruntime"]:
        small = _export(runtime, reloaded, tokenizer, task, tmp_path / f"{runtime}-trimmed")
        big = _export(runtime, model, tokenizer, task, tmp_path / runtime)
        assert open_artifact(small, threads=1).translate(SENTENCES, batch_size=4, max_length=MAX_NEW) == whole, runtime
        assert open_artifact(big, threads=1).translate(SENTENCES, batch_size=4, max_length=MAX_NEW) == whole, runtime
        if runtime == "onnxruntime" or family == "marian-separate":
            # (CTranslate2 shares one embedding between encoder, decoder and projection for a shared vocabulary;
            # trimmed, the decoder needs its own: smaller work per token, not a smaller file)
            assert _size(small) < _size(big), runtime


def test_the_pass_keeps_what_the_data_and_the_teacher_use(family_dirs: dict[str, Path], tmp_path: Path) -> None:
    loaded = load_model(str(family_dirs["marian-separate"]))
    train = load_demo("dev").head(40)
    ctx = TeacherContext(
        loaded.model,
        loaded.tokenizer,
        train,
        ArtifactCache(tmp_path / "cache", shipped=()),
        translation_settings=TranslationSettings(max_length=24),
        task=loaded.task,
    )
    everything = build_student(Recipe.make([("vocabulary", {"keep": "used"})], task=loaded.task), ctx)
    metrics: dict = {}
    recipe = Recipe.make([("vocabulary", {"keep": "used", "min_count": 3})], task=loaded.task)
    frequent = build_student(recipe, ctx, metrics)
    _, translations = ctx.teacher_translations()
    references = loaded.tokenizer(text_target=list(train.references))["input_ids"]
    used = {t for rows in (translations, references) for row in rows for t in row}
    assert used <= set(target_ids(everything))
    assert len(target_ids(frequent)) < len(target_ids(everything)) < loaded.model.get_output_embeddings().out_features
    assert metrics["cache"]["target_token_counts"]["hit"]  # counted once, for both


SHORTLIST_CASES = [
    (f, r) for f in FAMILIES for r in ("onnxruntime", "ctranslate2") if f.startswith("marian") or r == "onnxruntime"
]


@pytest.mark.parametrize(("family", "runtime"), SHORTLIST_CASES)
@pytest.mark.parametrize("trimmed", [False, True], ids=["whole", "trimmed"])
def test_a_shortlist_limits_the_artifact_to_its_candidates(
    family: str, runtime: str, trimmed: bool, family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """With every target token a candidate the shortlist changes nothing; with one candidate per source token and
    16 always kept, each sentence's output is made of its own candidates only — so the runtime does use it (an
    onnxruntime decoder then no longer computes the whole projection)."""
    import onnx

    from autocompress.passes.build import build_artifact

    loaded = load_model(str(family_dirs[family]))
    ctx = TeacherContext(
        loaded.model,
        loaded.tokenizer,
        load_demo("dev").head(40),
        ArtifactCache(tmp_path / "cache", shipped=()),
        translation_settings=TranslationSettings(max_length=24),
        task=loaded.task,
    )
    passes: list[tuple[str, dict[str, Any]]] = [("vocabulary", {"keep": "used"})] if trimmed else []
    model = build_student(Recipe.make(passes, task=loaded.task), ctx)
    size = loaded.model.get_output_embeddings().out_features
    exported: list[Path] = []

    def onnx_fp32() -> Path:
        if not exported:
            exported.append(export_onnx(model, loaded.tokenizer, tmp_path / "onnx-fp32", task=loaded.task))
        return exported[0]

    def artifact(name: str, shortlist: dict[str, Any] | None) -> Any:
        steps = [*passes, ("precision", {"runtime": runtime, "dtype": "fp32"})]
        recipe = Recipe.make(steps + ([("shortlist", shortlist)] if shortlist else []), task=loaded.task)
        out = build_artifact(model, loaded.tokenizer, recipe, tmp_path / name, onnx_fp32, ctx=ctx)
        return open_artifact(out, threads=1)

    plain = artifact("plain", None)
    generous = artifact("generous", {"top_k": 100, "frequent": size})
    assert generous.manifest.shortlist["top_k"] == 100
    assert (generous.directory / generous.manifest.shortlist["file"]).exists()
    expected = plain.translate(SENTENCES, batch_size=4, max_length=MAX_NEW)
    assert generous.translate(SENTENCES, batch_size=4, max_length=MAX_NEW) == expected
    if runtime == "onnxruntime":  # the projection left the graph: fewer weights, and no logits output
        merged = generous.manifest.files["decoder_merged"]
        decoder = onnx.load(str(generous.directory / merged))
        assert "logits" not in {o.name for o in decoder.graph.output}
        whole = onnx.load(str(plain.directory / plain.manifest.files["decoder_merged"]))
        assert _weights(decoder) < _weights(whole) - model.get_output_embeddings().weight.numel() // 2

    narrow = artifact("narrow", {"top_k": 1, "frequent": 16})
    table = ctx.shortlist_table()
    top = table["top"]
    outputs = []
    fixed = {loaded.tokenizer.unk_token_id, loaded.tokenizer.eos_token_id, *table["frequent"][:16].tolist()}
    fixed |= {narrow.manifest.decoding["forced_bos_token_id"]}  # the target language (MBart-50, M2M100, NLLB)
    if narrow.manifest.target_ids is not None and narrow.manifest.decoding["forced_bos_token_id"] is not None:
        fixed |= {narrow.manifest.target_ids[narrow.manifest.decoding["forced_bos_token_id"]]}
    for sentence in SENTENCES:
        ids, mask = narrow.encode([sentence])
        try:
            generated = narrow.generate_ids(ids, mask, MAX_NEW)[0]
        except RuntimeError as error:  # CTranslate2's padded candidates won (ct2_loop): said in one line
            assert runtime == "ctranslate2" and "widen it" in str(error)
            continue
        row = [t if narrow.manifest.target_ids is None else narrow.manifest.target_ids[t] for t in generated[1:]]
        # a source token's one candidate: its best-ranked token that is not among the 16 always kept
        kept = set(table["frequent"][:16].tolist())
        firsts = (next((int(t) for t in top[s].tolist() if t >= 0 and t not in kept), None) for s in ids[0].tolist())
        candidates = {t for t in firsts if t is not None} | fixed
        assert set(row) - {loaded.tokenizer.pad_token_id} <= candidates, sentence
        outputs.append(row)
    assert any(outputs), "the narrow shortlist still translates"


def test_the_lexical_ranking_puts_each_words_translation_first() -> None:
    """IBM Model 1 on pairs where each source word has one translation and a function word (5) is in every target:
    each source word's list starts with its translation, the function word (explained by NULL) comes after it, and a
    source word never met has an empty list."""
    from autocompress.passes.shortlist import Lists, candidates
    from autocompress.teacher.lexicon import MIN_PROBS, lexical_ranking

    translation = {1: 10, 2: 20, 3: 30, 4: 40}
    pairs = [(a, b) for a in translation for b in translation if a < b]
    sources = [[a, b] for a, b in pairs]
    targets = [[5, translation[b], translation[a]] for a, b in pairs]  # another order than the source's
    top, reaching = lexical_ranking(sources, targets, source_size=8, target_size=50, width=4)
    for word, meaning in translation.items():
        assert top[word, 0] == meaning, (word, top[word].tolist())
        assert 5 in top[word].tolist()[1:]
    assert (top[7] == -1).all() and top.shape == (8, 4)
    # how many candidates reach each least probability: all listed ones at 0, fewer as it rises, the translation at 0.1
    assert reaching.shape == (8, len(MIN_PROBS))
    assert (reaching[:, 0] == (top >= 0).sum(axis=1)).all()
    assert (np.diff(reaching, axis=1) <= 0).all()
    assert (reaching[1:5, MIN_PROBS.index(0.1)] >= 1).all() and (reaching[1:5, -1] < reaching[1:5, 0]).all()
    table = {"top": torch.from_numpy(top), "reaching": torch.from_numpy(reaching), "frequent": torch.arange(50)}
    _, everything = candidates(table, Lists(top_k=4, frequent=0))
    _, likely = candidates(table, Lists(top_k=4, frequent=0, min_prob=0.1))
    assert (likely[:, 0] == everything[:, 0]).all()
    assert ((likely >= 0).sum(axis=1) == reaching[:, MIN_PROBS.index(0.1)]).all()
