"""The onnxruntime artifact in Optimum's and transformers.js's layout: the merged decoder decodes as the three graphs
the passes work on; tokenizer.json tokenizes as MarianTokenizer; and the real clients — transformers.js in Node and
Optimum's ORTModelForSeq2SeqLM in its own environment (clients/, installed by .ci/run) — translate the demo teacher
and a pruned student (per-layer head counts) at int8 with the tokens our loop produces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autocompress.data import load_demo
from autocompress.evaluate.size import artifact_size
from autocompress.export.layout import standard_layout
from autocompress.export.onnx import export_onnx
from autocompress.export.quantize import quantize_onnx
from autocompress.manifest import Manifest
from autocompress.model.load import DEMO_MODEL, load_model
from autocompress.runtime.onnx_loop import OnnxSeq2Seq

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
NODE_CLIENT = CLIENTS / "node_modules" / "@huggingface" / "transformers"
OPTIMUM_PYTHON = CLIENTS / "optimum-venv" / "bin" / "python"
SENTENCES = 20
MAX_NEW = 48


def _finished(fp32: Path, out: Path, dtype: str) -> Path:
    if dtype == "fp32":
        shutil.copytree(fp32, out)
    else:
        quantize_onnx(fp32, out, {"dtype": dtype})
    standard_layout(out)
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo teacher and a pruned student of it (heads removed unevenly across layers, one decoder layer),
    exported and finished at int8."""
    import torch

    from autocompress.model import arch
    from autocompress.model.structure import prune_heads

    root = tmp_path_factory.mktemp("layout")
    loaded = load_model(str(DEMO_MODEL))
    teacher = export_onnx(loaded.model, loaded.tokenizer, root / "teacher-fp32")
    student = loaded.model
    arch.set_layers(student, "decoder", list(arch.layers(student, "decoder"))[:1])
    with torch.no_grad():
        for block in arch.attention_blocks(student):
            keep = list(range(block.num_heads - (block.layer % 2) - 1))  # 3 or 2 of 4 heads: counts differ
            prune_heads(block, keep)
    pruned = export_onnx(student, loaded.tokenizer, root / "pruned-fp32")
    return {
        "teacher": _finished(teacher, root / "teacher-int8", "int8"),
        "pruned": _finished(pruned, root / "pruned-int8", "int8"),
        "teacher-split": teacher,
    }


def _ours(artifact: Path, sentences: list[str], merged: bool = False) -> list[list[int]]:
    runtime = OnnxSeq2Seq(artifact, threads=1, merged=merged)
    rows = []
    for sentence in sentences:  # one at a time, as the clients are called
        ids, mask = runtime.encode([sentence])
        rows.append([int(t) for t in runtime.generate_ids(ids, mask, MAX_NEW)[0]])
    return rows


def test_the_finished_artifact_is_in_the_standard_layout(demo: dict[str, Path]) -> None:
    for name in ("teacher", "pruned"):
        directory = demo[name]
        files = Manifest.read(directory).files
        expected = {
            "encoder": "onnx/encoder_model_int8.onnx",
            "decoder_merged": "onnx/decoder_model_merged_int8.onnx",
            "decoder_cross": "onnx/decoder_cross_int8.onnx",
            "decoder_step": "onnx/decoder_step_int8.onnx",
        }
        assert files == expected  # fmt: skip
        assert {p.name for p in (directory / "onnx").iterdir()} == {Path(f).name for f in files.values()}
        assert Manifest.read(directory).loop_files() == [files[g] for g in ("encoder", "decoder_cross", "decoder_step")]
        for required in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            assert (directory / required).is_file(), required
    import onnx

    merged = onnx.load(str(demo["pruned"] / "onnx" / "decoder_model_merged_int8.onnx"))
    inputs = [i.name for i in merged.graph.input]
    assert inputs[:3] == ["encoder_attention_mask", "input_ids", "encoder_hidden_states"]
    assert inputs[-1] == "use_cache_branch" and "past_key_values.0.encoder.value" in inputs
    outputs = [o.name for o in merged.graph.output]
    assert outputs == ["logits", "present.0.decoder.key", "present.0.decoder.value", "present.0.encoder.key",
                       "present.0.encoder.value"]  # fmt: skip
    assert merged.graph.node[0].op_type == "If"  # cross keys/values computed or taken back; the step after it


@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_the_merged_decoder_decodes_as_the_separate_graphs(dtype: str, demo: dict[str, Path], tmp_path: Path) -> None:
    split = tmp_path / "split"
    if dtype == "fp32":
        shutil.copytree(demo["teacher-split"], split)
    else:
        quantize_onnx(demo["teacher-split"], split, {"dtype": dtype})
    merged = _finished(demo["teacher-split"], tmp_path / "merged", dtype)
    a, b = OnnxSeq2Seq(split, threads=1), OnnxSeq2Seq(merged, threads=1, merged=True)
    ids, mask = a.encode(list(load_demo("dev").sources[:16]))
    for beam in (1, 3):
        expected = a.generate_ids(ids, mask, 40, beam=beam)
        np.testing.assert_array_equal(b.generate_ids(ids, mask, 40, beam=beam), expected)
    decoders = [split / Manifest.read(split).files[graph] for graph in ("decoder_cross", "decoder_step")]
    size = (merged / Manifest.read(merged).files["decoder_merged"]).stat().st_size
    assert size == pytest.approx(sum(f.stat().st_size for f in decoders), rel=0.02), "every weight stored once"
    assert artifact_size(merged)["size_mb"].value == artifact_size(split)["size_mb"].value, "what our loop reads"


def test_tokenizer_json_tokenizes_as_marian(demo: dict[str, Path]) -> None:
    from tokenizers import Tokenizer

    from autocompress.model.tokenizer import load_tokenizer

    fast = Tokenizer.from_file(str(demo["teacher"] / "tokenizer.json"))
    slow = load_tokenizer(demo["teacher"])
    corpus = load_demo("dev")
    texts = list(corpus.sources) + list(corpus.references) + ["  two  spaces ", "Ünïcödé ½ ﬁ", "tab\there </s> x"]
    for text in texts:
        assert fast.encode(text).ids == slow(text)["input_ids"], text
    ids = slow(texts[0])["input_ids"]
    assert fast.decode(ids, skip_special_tokens=True) == slow.decode(ids, skip_special_tokens=True)


def _client(command: list[str], sentences: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    done = subprocess.run(
        command, input="\n".join(sentences) + "\n", capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _require(path: Path, what: str) -> None:
    if path.exists():
        return
    message = f"{what} is not installed ({path}): `.ci/run` installs it (see clients/README.md)"
    if os.environ.get("AUTOCOMPRESS_CI_CLIENTS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("name", ["teacher", "pruned"])
def test_transformers_js_translates_as_our_loop(name: str, demo: dict[str, Path]) -> None:
    _require(NODE_CLIENT, "transformers.js")
    sentences = list(load_demo("dev").sources[:SENTENCES])
    got = _client(["node", str(CLIENTS / "transformers_js.mjs"), str(demo[name]), "int8", str(MAX_NEW)], sentences)
    ours = _ours(demo[name], sentences)
    runtime = OnnxSeq2Seq(demo[name], threads=1)
    assert [row["source_ids"] for row in got] == [list(runtime.encode([s])[0][0]) for s in sentences]
    assert [row["ids"] for row in got] == ours
    assert [row["text"] for row in got] == runtime.decode(ours)
    assert _ours(demo[name], sentences, merged=True) == ours, "the merged graph decodes as the cross and step graphs"


@pytest.mark.parametrize("name", ["teacher", "pruned"])
def test_optimum_translates_as_our_loop(name: str, demo: dict[str, Path]) -> None:
    _require(OPTIMUM_PYTHON, "Optimum's environment")
    sentences = list(load_demo("dev").sources[:SENTENCES])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    command = [str(OPTIMUM_PYTHON), str(CLIENTS / "optimum_translate.py"), str(demo[name]), "encoder_model_int8.onnx"]
    got = _client([*command, str(MAX_NEW)], sentences, env)
    assert [row["ids"] for row in got] == _ours(demo[name], sentences)
