"""Every family, built as users build theirs (own SentencePiece tokenizer, the family's conventions, save_pretrained),
through every runtime it exports to: the artifact's greedy tokens equal PyTorch fp32's, for the teacher and for a
pruned student, and no special or language token reaches the text.

Marian in OPUS-MT's layout (<pad> last, non-zero <pad> embedding) with a shared and with separate vocabularies,
MBart-50 and NLLB/M2M100 (language tokens, read from the tokenizer), T5 (a task prefix, read from the config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.demo.families import FAMILIES, T5_PREFIX, build_family
from autocompress.export.ctranslate2 import export_ctranslate2
from autocompress.export.onnx import export_onnx
from autocompress.model.importance import ImportanceSettings
from autocompress.model.load import load_model
from autocompress.model.translate import generate_ids, output_special_ids, translate_texts
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.runtime import open_artifact
from autocompress.task import special_ids
from autocompress.teacher.context import TeacherContext

SENTENCES = list(load_demo("dev").sources[:12])
MAX_NEW = 12
# A uniform head count per stack, so that CTranslate2 takes the student too.
PRUNED = [("layers", {"decoder_layers": 1}), ("heads", {"fraction": 0.5, "allocation": "uniform"})]
TASKS = {
    "marian": {},
    "marian-separate": {},
    "mbart50": {"source_lang": "en_XX", "target_lang": "es_XX"},
    "m2m100": {"source_lang": "en", "target_lang": "es"},
    "nllb": {"source_lang": "eng_Latn", "target_lang": "spa_Latn"},
    "t5": {"source_prefix": T5_PREFIX, "source_lang": "en", "target_lang": "es"},
}


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root, corpus = tmp_path_factory.mktemp("families"), load_demo("dev")
    return {family: build_family(family, root / family, corpus, weight_std=1.0) for family in FAMILIES}


def _model(family: str, pruned: bool, family_dirs: dict[str, Path], tmp_path: Path) -> tuple[Any, Any, Any]:
    loaded = load_model(str(family_dirs[family]))
    model = loaded.model
    if pruned:
        ctx = TeacherContext(
            model,
            loaded.tokenizer,
            load_demo("dev").head(24),
            ArtifactCache(tmp_path / "cache"),
            importance_settings=ImportanceSettings(sentences=24, max_tokens=400, max_length=48),
            task=loaded.task,
        )
        model = build_student(Recipe.make(PRUNED, task=loaded.task), ctx)
    return model, loaded.tokenizer, loaded.task


def _content(row: Any, start: int | None, eos: int, pad: int) -> list[int]:
    """The generated tokens: without the decoder start, up to eos, without padding."""
    tokens = [int(t) for t in row]
    if start is not None and tokens and tokens[0] == start:
        tokens = tokens[1:]
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    return [t for t in tokens if t != pad]


def _runtimes(family: str) -> list[str]:
    return ["onnxruntime", "ctranslate2"] if family.startswith("marian") else ["onnxruntime"]


@pytest.mark.parametrize("pruned", [False, True], ids=["teacher", "pruned"])
@pytest.mark.parametrize("family", FAMILIES)
def test_artifacts_decode_like_pytorch(family: str, pruned: bool, family_dirs: dict[str, Path], tmp_path: Path):
    model, tokenizer, task = _model(family, pruned, family_dirs, tmp_path)
    assert task.to_dict() == TASKS[family]  # read from the model and its tokenizer, no option given
    expected_rows = generate_ids(model, tokenizer, SENTENCES, max_length=MAX_NEW, batch_size=4, task=task)
    start, eos, pad = model.config.decoder_start_token_id, model.config.eos_token_id, model.config.pad_token_id
    expected = [_content(row, start, eos, pad) for row in expected_rows]
    assert len({tuple(e) for e in expected}) > len(SENTENCES) // 2, "outputs must depend on the inputs"
    forced = model.generation_config.forced_bos_token_id
    assert all(e[:1] == [forced] for e in expected) if forced is not None else True
    expected_text = translate_texts(model, tokenizer, SENTENCES, max_length=MAX_NEW, batch_size=4, task=task)
    reference_ids = tokenizer(task.sources(SENTENCES), padding=True, return_tensors="np")["input_ids"]
    banned = [t for t in tokenizer.convert_ids_to_tokens(sorted(special_ids(tokenizer))) if t]

    for runtime_name in _runtimes(family):
        directory = tmp_path / runtime_name
        if runtime_name == "onnxruntime":
            export_onnx(model, tokenizer, directory, task=task)
        else:
            export_ctranslate2(model, tokenizer, directory, quantization="float32", task=task)
        runtime = open_artifact(directory, threads=1)
        assert runtime.task == task
        ids, mask = runtime.encode(SENTENCES, 256)  # the prefix and the source-language token, as in PyTorch
        np.testing.assert_array_equal(ids, reference_ids)
        for i in range(0, len(SENTENCES), 4):
            rows = runtime.generate_ids(ids[i : i + 4], mask[i : i + 4], MAX_NEW)
            for j, row in enumerate(rows):
                assert _content(row, start, eos, pad) == expected[i + j], f"{runtime_name}, sentence {i + j}"
        texts = runtime.translate(SENTENCES, batch_size=4, max_length=MAX_NEW)
        assert texts == expected_text
        leaked = [(t, token) for t in texts for token in banned if token in t]
        assert not leaked, f"{runtime_name} output carries special tokens: {leaked[:3]}"
    assert not [(t, token) for t in expected_text for token in banned if token in t]
    assert output_special_ids(model, tokenizer) >= {forced} if forced is not None else True


def test_ctranslate2_keeps_separate_vocabularies_apart(family_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Plain CTranslate2 fed the tokenizer's own source pieces scores a reference (target pieces) as PyTorch does: each
    vocabulary file holds its own side, as a user of the exported model relies on."""
    import torch

    loaded = load_model(str(family_dirs["marian-separate"]))
    model, tokenizer = loaded.model, loaded.tokenizer
    runtime = open_artifact(export_ctranslate2(model, tokenizer, tmp_path / "ct2", quantization="float32"))
    assert (tmp_path / "ct2" / "source_vocabulary.json").exists()
    assert (tmp_path / "ct2" / "target_vocabulary.json").exists()
    batch = tokenizer(SENTENCES[:1], text_target=load_demo("dev").references[:1], return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits.log_softmax(-1).gather(-1, batch["labels"][..., None])[0, :, 0]
    source = [*tokenizer.tokenize(SENTENCES[0]), tokenizer.eos_token]  # the source sentencepiece model's pieces
    target = tokenizer.convert_ids_to_tokens(batch["labels"][0].tolist())[:-1]  # target pieces; CTranslate2 adds </s>
    scored = runtime.translator.score_batch([source], [target])[0].log_probs
    # logits of ±30: float32 sums differ by up to ~1e-3 (CI saw 6.8e-4); a vocabulary mixed up differs by units
    np.testing.assert_allclose(scored, expected.numpy(), rtol=1e-4, atol=1e-3)


def test_task_options_override_and_unknown_languages_are_refused(family_dirs: dict[str, Path]) -> None:
    from autocompress.errors import UserInputError

    loaded = load_model(str(family_dirs["m2m100"]), task={"target_lang": "fr"})
    assert loaded.task.target_lang == "fr"
    assert loaded.model.generation_config.forced_bos_token_id == loaded.tokenizer.get_lang_id("fr")
    with pytest.raises(UserInputError, match="language 'xx' is not one of this tokenizer's languages"):
        load_model(str(family_dirs["nllb"]), task={"target_lang": "xx"})
    t5 = load_model(str(family_dirs["t5"]), task={"source_prefix": "translate English to French: "})
    assert t5.task.source_prefix == "translate English to French: "


# give_up: null: on these tiny random models int8 is 1.3-1.4× slower than the fp32 teacher, and this test is about
# what the exported model translates, not about cutting it short
PRECISION_ONLY = """
target: {device: cpu, threads: 1, batch_sizes: [1], max_length: 12, latency_sentences: 2, warmup: 1, repeats: 1,
         give_up: null}
evaluation: {dev_sentences: 12}
student: teacher
passes:
  precision: {runtime: onnxruntime, dtype: int8}
"""


@pytest.mark.parametrize("family", ["m2m100", "t5"])
def test_search_scores_and_exports_models_that_translate_as_the_teacher(
    family: str, family_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The search reads the task from the model, records it in every recipe and artifact; the baseline (the teacher
    as it is, fp32 ONNX) and the exported model, run by `autocompress translate`, translate as PyTorch does."""
    import io
    import json

    import autocompress
    from autocompress.cli import main

    (tmp_path / "space.yaml").write_text(PRECISION_ONLY)
    dev = load_demo("dev").head(12)
    (tmp_path / "dev.tsv").write_text("".join(f"{s}\t{r}\n" for s, r in zip(dev.sources, dev.references, strict=True)))
    model_dir = str(family_dirs[family])
    result = autocompress.search(
        model_dir,
        budget="1",
        space=str(tmp_path / "space.yaml"),
        train=str(tmp_path / "dev.tsv"),
        dev=str(tmp_path / "dev.tsv"),
        out=tmp_path / "search",
        max_bleu_drop=None,
        quiet=True,
    )
    loaded = load_model(model_dir)
    assert result.study.user_attrs["baseline"]["recipe"]["task"] == TASKS[family]
    assert result.exported is not None
    assert json.loads((result.exported / "artifact.json").read_text())["task"] == TASKS[family]
    expected = translate_texts(loaded.model, loaded.tokenizer, list(dev.sources), max_length=12, task=loaded.task)
    baseline = Path(result.study.user_attrs["baseline"]["artifact"])
    for artifact in (baseline, result.exported):
        monkeypatch.setattr("sys.stdin", io.StringIO("".join(s + "\n" for s in dev.sources)))
        assert main(["translate", "--model", str(artifact), "--max-length", "12"]) == 0
        got = capsys.readouterr().out.splitlines()
        if artifact == baseline:
            assert got == expected  # fp32: the teacher's own translations
        assert len(got) == len(expected) and not any(t in line for line in got for t in ("__es__", "</s>", "<pad>"))
    assert main(["evaluate", "--model", str(result.exported), "--tsv", str(tmp_path / "dev.tsv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 12


def test_ctranslate2_is_offered_only_the_compute_types_this_cpu_runs() -> None:
    """Given a type the device lacks (int16 without MKL), CTranslate2 silently runs int8_float32: such a trial would
    be labelled with a precision it did not run. So the space offers what CTranslate2 says the device runs."""
    import ctranslate2

    from autocompress.export.ctranslate2 import QUANTIZATION_OF
    from autocompress.passes.base import RecipeError
    from autocompress.passes.precision import check_target
    from autocompress.passes.recipe import PassConfig
    from autocompress.runtime.registry import RUNTIMES

    native = ctranslate2.get_supported_compute_types("cpu")
    offered = RUNTIMES["ctranslate2"].valid_dtypes("cpu")
    assert offered and all(QUANTIZATION_OF[dtype] in native for dtype in offered)
    assert ("int16" in offered) == ("int16" in native)
    if "int16" not in native:
        with pytest.raises(RecipeError, match="ctranslate2 cannot run it on this cpu"):
            check_target(PassConfig.make("precision", {"runtime": "ctranslate2", "dtype": "int16"}), "cpu")
