"""The CUDA paths, run where a GPU is (benchmarks/gpu_check.py runs `pytest -m cuda` on the device machine; here they
skip): onnxruntime artifacts on the CUDA execution provider, CTranslate2 on CUDA, distillation in bf16, and a
measurement holding the lock of the GPU it runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from autocompress.cache import ArtifactCache
from autocompress.data import load_demo
from autocompress.evaluate.latency import measure_latency
from autocompress.evaluate.quality import artifact_quality
from autocompress.export.onnx import export_onnx
from autocompress.model.load import load_model
from autocompress.passes.build import build_artifact, build_student
from autocompress.passes.recipe import Recipe
from autocompress.runtime import open_artifact
from autocompress.target import TargetSpec
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.translations import TranslationSettings

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py)"),
]
CUDA = TargetSpec.from_dict({"device": "cuda", "batch_sizes": [1, 4], "max_length": 16, "latency_sentences": 4})
SENTENCES = ["The king spoke to the people.", "And God said, Let there be light."]


@pytest.fixture(scope="module")
def marian(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    loaded = load_model(str(tiny_models["marian"]))
    ctx = TeacherContext(
        loaded.model,
        loaded.tokenizer,
        load_demo("dev").head(40),
        ArtifactCache(tmp_path_factory.mktemp("cache"), shipped=()),
        translation_settings=TranslationSettings(max_length=16, runtime="pytorch"),
        task=loaded.task,
        device="cuda",
    )
    return {"loaded": loaded, "ctx": ctx, "work": tmp_path_factory.mktemp("cuda")}


def _artifact(marian: dict[str, Any], name: str, passes: list[tuple[str, dict[str, Any]]]) -> Path:
    loaded, ctx, work = marian["loaded"], marian["ctx"], marian["work"]
    recipe = Recipe.make(passes, task=loaded.task)
    model = build_student(Recipe.make([p for p in passes if p[0] != "precision"], task=loaded.task), ctx).cpu()

    def onnx_fp32() -> Path:
        return export_onnx(model, loaded.tokenizer, work / f"{name}-onnx", task=loaded.task)

    return build_artifact(model, loaded.tokenizer, recipe, work / name, onnx_fp32, ctx=ctx, device="cuda")


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "int4"])
def test_onnxruntime_artifacts_run_on_the_cuda_provider(marian: dict[str, Any], dtype: str) -> None:
    path = _artifact(marian, f"ort-{dtype}", [("precision", {"runtime": "onnxruntime", "dtype": dtype})])
    runtime = open_artifact(path, threads=1, providers=CUDA.providers)
    sessions = [s for s in vars(runtime).values() if hasattr(s, "get_providers")]
    assert sessions and all(s.get_providers()[0] == "CUDAExecutionProvider" for s in sessions)
    assert all(runtime.translate(SENTENCES, batch_size=2, max_length=16))
    bleu = artifact_quality(runtime, load_demo("dev").head(8), CUDA)["bleu"]
    assert bleu.signature.count("device:cuda") == 1


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "int8"])
def test_ctranslate2_artifacts_run_on_cuda(marian: dict[str, Any], dtype: str) -> None:
    path = _artifact(marian, f"ct2-{dtype}", [("precision", {"runtime": "ctranslate2", "dtype": dtype})])
    runtime = open_artifact(path, threads=1, providers=CUDA.providers)
    assert runtime.translator.device == "cuda"
    assert all(runtime.translate(SENTENCES, batch_size=2, max_length=16))


def test_distillation_trains_in_bf16_on_the_gpu(marian: dict[str, Any]) -> None:
    ctx, metrics = marian["ctx"], {}
    passes = [("layers", {"decoder_layers": 1}), ("distill", {"steps": 4, "max_tokens": 300})]
    student = build_student(Recipe.make(passes, task=marian["loaded"].task), ctx, metrics)
    assert metrics["distill"]["steps"] == 4
    assert all(torch.isfinite(p).all() for p in student.parameters())


def test_a_latency_measurement_on_cuda_names_its_provider(marian: dict[str, Any]) -> None:
    path = _artifact(marian, "ort-latency", [("precision", {"runtime": "onnxruntime", "dtype": "fp16"})])
    measured = measure_latency(path, load_demo("dev").sources[:4], CUDA)
    assert measured["latency_p50_ms"].value > 0
    assert "device:cuda" in measured["latency_p50_ms"].signature
    assert "CUDAExecutionProvider" in measured["latency_p50_ms"].signature
