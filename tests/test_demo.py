"""The embedded default end to end: the shipped teacher translates and evaluates from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autocompress.model.load import DEMO_MODEL

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="demo teacher not installed yet")


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autocompress", *args], input=stdin, capture_output=True, text=True, timeout=600
    )


def test_evaluate_demo_prints_bleu_chrf_and_signatures() -> None:
    done = _cli("evaluate", "--model", "demo", "--split", "test", "--limit", "40", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sentences"] == 40
    assert result["bleu"] > 5  # a trained model: random weights score ~0
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert result["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")


def test_translate_demo_reads_stdin_writes_stdout() -> None:
    done = _cli("translate", "--model", "demo", stdin="In the beginning God created the heavens.\nJesus wept.\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert "Dios" in lines[0]
    assert "Traceback" not in done.stderr


def test_model_card_states_what_the_issue_asks() -> None:
    card = (DEMO_MODEL / "README.md").read_text()
    for needed in ("autocompress train-teacher", "BLEU", "chrF", "beam 4", "greedy", "nrefs:1|", "Reina-Valera 1909"):
        assert needed in card, needed
    assert (DEMO_MODEL / "model.safetensors").stat().st_size < 20 * 2**20  # fp16


# BLEU points an artifact may lose against fp32 on the 100 dev verses below (measured on the shipped teacher:
# see the closing note of the artifact issue); quantization noise flips some greedy choices, a broken graph loses all.
TOLERANCE = {"int8": 1.5, "int8_static": 2.0, "int4": 2.5}


def test_quantized_artifacts_stay_within_tolerance_of_fp32(tmp_path_factory: pytest.TempPathFactory) -> None:
    from autocompress.data import load_demo
    from autocompress.evaluate.quality import artifact_quality
    from autocompress.export.onnx import export_onnx
    from autocompress.export.quantize import quantize_onnx
    from autocompress.model.load import load_model
    from autocompress.runtime.calibration import calibration_readers
    from autocompress.runtime.onnx_loop import OnnxSeq2Seq
    from autocompress.target import TargetSpec

    work = tmp_path_factory.mktemp("demo-artifacts")
    teacher = load_model("demo")
    fp32 = export_onnx(teacher.model, teacher.tokenizer, work / "fp32")
    dev, target = load_demo("dev").head(100), TargetSpec()
    reference = artifact_quality(OnnxSeq2Seq(fp32), dev, target)["bleu"].value
    calibration = calibration_readers(fp32, list(load_demo("train").sources[:64]))
    for dtype, tolerance in TOLERANCE.items():
        artifact = quantize_onnx(fp32, work / dtype, {"dtype": dtype}, calibration if dtype == "int8_static" else None)
        bleu = artifact_quality(OnnxSeq2Seq(artifact), dev, target)["bleu"].value
        assert reference - bleu <= tolerance, (dtype, reference, bleu)
