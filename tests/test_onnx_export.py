"""Export → onnxruntime: greedy tokens of the exported graphs equal PyTorch's, for teachers and pruned students."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from autocompress import arch
from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.export.onnx import export_onnx
from autocompress.importance import ImportanceSettings
from autocompress.passes.context import PassContext
from autocompress.recipe import Recipe
from autocompress.runtime.onnx_loop import OnnxSeq2Seq
from autocompress.student import build_student

from .conftest import FAMILIES

SENTENCES = ["In the beginning God created the heavens and the earth.", "Grace to you.", "Jesus wept."]
PRUNED = [
    ("layers", {"encoder_layers": 1}),
    ("heads", {"fraction": 0.5}),
    ("ffn", {"keep": 0.5}),
    ("sparsity", {"target": 0.5}),
]


@pytest.mark.parametrize("pruned", [False, True], ids=["teacher", "pruned"])
@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_greedy_tokens_equal_pytorch(
    family: str, pruned: bool, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[family]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    if pruned:
        ctx = PassContext(
            model,
            tokenizer,
            load_demo("dev").head(24),
            ArtifactCache(tmp_path / "cache"),
            importance_settings=ImportanceSettings(sentences=24, max_tokens=400, max_length=48),
        )
        model = build_student(Recipe.make(PRUNED), ctx)
    runtime = OnnxSeq2Seq(export_onnx(model, tokenizer, tmp_path / "onnx"), threads=1)
    enc = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model.generate(
            **enc, max_new_tokens=12, num_beams=1, do_sample=False, **arch.generate_kwargs(model)
        ).numpy()
    got = runtime.generate_ids(enc["input_ids"].numpy(), enc["attention_mask"].numpy(), max_new_tokens=12)
    np.testing.assert_array_equal(got, expected)
