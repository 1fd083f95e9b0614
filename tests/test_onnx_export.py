"""Export → onnxruntime: greedy tokens of the exported graphs equal PyTorch's, for teachers and pruned students."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.export.onnx import export_onnx
from autocompress.manifest import Manifest
from autocompress.model import arch
from autocompress.model.importance import ImportanceSettings
from autocompress.passes.build import build_student
from autocompress.passes.recipe import Recipe
from autocompress.runtime.onnx_loop import OnnxSeq2Seq
from autocompress.teacher.context import TeacherContext

from .conftest import FAMILIES

SENTENCES = ["In the beginning God created the heavens and the earth.", "Grace to you.", "Jesus wept."]
REFERENCE = "En el principio crió Dios los cielos y la tierra."
PRUNED = [
    ("layers", {"encoder_layers": 1}),
    ("heads", {"fraction": 0.5}),
    ("ffn", {"keep": 0.5}),
    ("sparsity", {"target": 0.5}),
]


def _student(model: Any, tokenizer: Any, passes: list[tuple[str, dict]], tmp_path: Path) -> Any:
    ctx = TeacherContext(
        model,
        tokenizer,
        load_demo("dev").head(24),
        ArtifactCache(tmp_path / "cache"),
        importance_settings=ImportanceSettings(sentences=24, max_tokens=400, max_length=48),
    )
    return build_student(Recipe.make(passes), ctx)


@pytest.mark.parametrize("pruned", [False, True], ids=["teacher", "pruned"])
@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_greedy_tokens_equal_pytorch(
    family: str, pruned: bool, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[family]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    if pruned:
        model = _student(model, tokenizer, PRUNED, tmp_path)
    runtime = OnnxSeq2Seq(export_onnx(model, tokenizer, tmp_path / "onnx"), threads=1)
    enc = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    for beam in (1, 4):
        with torch.no_grad():
            expected = model.generate(
                **enc,
                max_new_tokens=12,
                num_beams=beam,
                do_sample=False,
                early_stopping=beam > 1,
                **arch.generate_kwargs(model),
            ).numpy()
        got = runtime.generate_ids(enc["input_ids"].numpy(), enc["attention_mask"].numpy(), 12, beam=beam)
        np.testing.assert_array_equal(got, expected, err_msg=f"beam {beam}")


def _ops(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(path).graph.node}


@pytest.fixture(scope="module")
def marian_artifact(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["marian"])
    return export_onnx(model, tokenizer, tmp_path_factory.mktemp("artifact") / "fp32")


@pytest.mark.parametrize(
    ("params", "expected_ops"),
    [
        ({"dtype": "int8"}, {"MatMulInteger", "DynamicQuantizeLinear"}),
        ({"dtype": "int8", "per_channel": True, "gather": True}, {"MatMulInteger", "DequantizeLinear"}),
        ({"dtype": "int4", "block_size": 16}, {"MatMulNBits"}),
    ],
    ids=["int8", "int8-per-channel-gather", "int4"],
)
def test_quantized_artifact_runs_with_every_matmul_quantized(
    params: dict, expected_ops: set[str], marian_artifact: Path, tmp_path: Path
) -> None:
    from autocompress.export.quantize import quantize_onnx

    out = quantize_onnx(marian_artifact, tmp_path / "q", params)
    for graph in Manifest.read(out).files.values():
        ops = _ops(out / graph)
        gathers = "Gather" in _ops(marian_artifact / graph)  # the cross graph looks up no embedding
        assert expected_ops - (set() if gathers else {"DequantizeLinear"}) <= ops, (graph, ops)
    # the output projection has its own weight (untied at export), so the quantizer reaches it: no fp32 MatMul
    # with a constant weight is left in the decoders
    import onnx

    for graph in ("decoder_cross", "decoder_step"):
        decoder = onnx.load(out / Manifest.read(out).files[graph])
        constants = {i.name for i in decoder.graph.initializer}
        assert not [n.name for n in decoder.graph.node if n.op_type == "MatMul" and n.input[1] in constants]
    runtime = OnnxSeq2Seq(out, threads=1)
    assert len(runtime.translate(SENTENCES, max_length=8)) == len(SENTENCES)


@pytest.mark.parametrize(("dtype", "device"), [("fp16", "cpu"), ("int8", "cuda"), ("int8_static", "cuda")])
def test_precision_invalid_for_target_is_refused_before_work(dtype: str, device: str) -> None:
    from autocompress.passes.base import RecipeError
    from autocompress.passes.precision import check_target
    from autocompress.passes.recipe import PassConfig

    with pytest.raises(
        RecipeError, match=rf"dtype '{dtype}' is not valid with onnxruntime for a {device} target: it runs on"
    ):
        check_target(PassConfig.make("precision", {"dtype": dtype}), device)


def test_static_int8_is_calibrated_on_decoder_traffic(marian_artifact: Path, tmp_path: Path) -> None:
    from autocompress.export.quantize import quantize_onnx
    from autocompress.runtime.calibration import calibration_readers

    readers = calibration_readers(marian_artifact, SENTENCES * 2, batch_size=2, max_length=8)
    assert len(readers["decoder_cross"].feeds) == 3, "once a batch"
    steps = readers["decoder_step"].feeds
    assert steps and {feed["past_key_values.0.decoder.key"].shape[2] for feed in steps} != {0}, "only the first step"
    out = quantize_onnx(marian_artifact, tmp_path / "qdq", {"dtype": "int8_static"}, calibration=readers)
    for graph in Manifest.read(out).files.values():
        assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(out / graph)
    assert len(OnnxSeq2Seq(out, threads=1).translate(SENTENCES, max_length=8)) == len(SENTENCES)


@pytest.mark.parametrize("pruned", [False, True], ids=["teacher", "pruned"])
def test_ctranslate2_float32_tokens_equal_pytorch(pruned: bool, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    family = "marian"
    from autocompress.export.ctranslate2 import export_ctranslate2
    from autocompress.runtime.ct2_loop import CT2Seq2Seq

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[family]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    if pruned:  # uniform counts: CTranslate2 takes one head count per stack
        model = _student(model, tokenizer, [("layers", {"decoder_layers": 1}), ("ffn", {"keep": 0.5})], tmp_path)
        from autocompress.model.structure import prune_heads

        for block in arch.attention_blocks(model):
            prune_heads(block, [0, 2])
    with torch.no_grad():  # a trained model's <pad> (its decoder start) has a non-zero embedding: so must this one
        model.get_input_embeddings().weight[tokenizer.pad_token_id].normal_(0, 1)
    runtime = CT2Seq2Seq(export_ctranslate2(model, tokenizer, tmp_path / "ct2", quantization="float32"), threads=1)
    enc = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model.generate(**enc, max_new_tokens=10, num_beams=1, do_sample=False)
    got = runtime.generate_ids(*runtime.encode(SENTENCES), 10)
    for row, hyp in zip(expected.tolist(), got, strict=True):
        want = [t for t in row[1:] if t not in (tokenizer.pad_token_id, tokenizer.eos_token_id)]
        # generate() forces eos as its 10th token where CTranslate2 emits a 10th word: compare what both decoded
        assert hyp[: len(want)] == want
        assert len(hyp) >= len(want)
    # Tokens of a random model hardly depend on its inputs; per-token log-probabilities of a reference do.
    batch = tokenizer(SENTENCES[:1], text_target=[REFERENCE], return_tensors="pt")
    with torch.no_grad():
        expected_lp = model(**batch).logits.log_softmax(-1).gather(-1, batch["labels"][..., None])[0, :, 0]
    target = tokenizer.convert_ids_to_tokens(batch["labels"][0].tolist())[:-1]  # CTranslate2 appends </s> itself
    source = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    scored = runtime.translator.score_batch([source], [target])[0].log_probs
    np.testing.assert_allclose(scored, expected_lp.numpy(), atol=1e-4)


def test_ctranslate2_int8_is_written_with_float16_tables_and_runs_at_int8(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weights int8 leaves in floating point go to disk in float16 (smaller), and CTranslate2 loads them back at
    int8 with float32 tables: scores as the float32-stored int8 model's, within float16 rounding."""
    from autocompress.export import ctranslate2 as ct2_export
    from autocompress.runtime.ct2_loop import CT2Seq2Seq

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["marian"])
    half = ct2_export.export_ctranslate2(model, tokenizer, tmp_path / "half", quantization="int8")
    monkeypatch.setattr(ct2_export, "STORED", {})  # the other choice: int8 weights beside float32 tables
    full = ct2_export.export_ctranslate2(model, tokenizer, tmp_path / "full", quantization="int8")
    assert Manifest.read(half).precision["stored"] == "int8_float16"
    assert Manifest.read(full).precision["stored"] == "int8"
    assert (half / "model.bin").stat().st_size < (full / "model.bin").stat().st_size
    batch = tokenizer(SENTENCES[:1], text_target=[REFERENCE])
    source = [tokenizer.convert_ids_to_tokens(batch["input_ids"][0])]
    target = [tokenizer.convert_ids_to_tokens(batch["labels"][0])[:-1]]
    scores = []
    for directory in (half, full):
        runtime = CT2Seq2Seq(directory, threads=1)
        assert runtime.translator.compute_type == "int8_float32"
        scores.append(runtime.translator.score_batch(source, target)[0].log_probs)
    np.testing.assert_allclose(scores[0], scores[1], atol=2e-2)


def test_ctranslate2_refuses_what_it_cannot_hold(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from autocompress.export.ctranslate2 import ExportError, export_ctranslate2
    from autocompress.model.structure import prune_heads

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["marian"])
    prune_heads(arch.attention_blocks(model)[0], [0, 1])  # encoder layer 0 keeps 2 heads, layer 1 keeps 4
    with pytest.raises(ExportError, match=r"one head count per stack; this student has \{'encoder': \[2, 4\]\}"):
        export_ctranslate2(model, tokenizer, tmp_path / "ct2")
    t5 = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["t5"])
    with pytest.raises(ExportError, match="CTranslate2 export supports Marian models; t5 exports to ONNX"):
        export_ctranslate2(t5, AutoTokenizer.from_pretrained(tiny_models["t5"]), tmp_path / "ct2-t5")
