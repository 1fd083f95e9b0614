"""Tiny encoder-decoder models of each supported family, built from configs with their native tokenizers."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from autocompress.data import load_demo

# Tests share cores with each other and with training jobs: busy-waiting OpenMP threads would starve them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FAMILIES = ("marian", "mbart", "m2m_100", "t5")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "alone: runs with no other test beside it (timings, shared ports, mounts)")


@pytest.fixture(autouse=True)
def _alone_or_side_by_side(request: pytest.FixtureRequest) -> Iterator[None]:
    """Two workers run the suite side by side (pytest-xdist: `-n 2` in pyproject.toml). Every test holds a shared
    lock while it runs; a test marked `alone` takes it exclusively, so it waits for the test beside it to end and the
    other worker waits for it. A turnstile taken first keeps the other worker's next tests from starving it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside
        yield
        return
    alone = request.node.get_closest_marker("alone") is not None
    root = Path(tempfile.gettempdir()) / f"autocompress-tests-{run}"
    root.mkdir(exist_ok=True)
    with open(root / "turnstile", "a") as turnstile, open(root / "running", "a") as running:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(running, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(running, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tiny_spm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sentencepiece as spm

    work = tmp_path_factory.mktemp("spm")
    dev = load_demo("dev")
    (work / "corpus.txt").write_text("\n".join(dev.sources + dev.references), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(work / "corpus.txt"),
        model_prefix=str(work / "spm"),
        vocab_size=400,
        model_type="unigram",
        eos_id=0,
        unk_id=1,
        pad_id=2,
        bos_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    return work / "spm.model"


def _tokenizer(family: str, spm_model: Path, out: Path):
    import sentencepiece as spm
    from transformers import M2M100Tokenizer, MarianTokenizer, MBartTokenizer, T5Tokenizer

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    vocab_json = out / "vocab.json"
    vocab_json.write_text(json.dumps({p: i for i, (p, _) in enumerate(pieces)}), encoding="utf-8")
    if family == "marian":
        return MarianTokenizer(source_spm=str(spm_model), target_spm=str(spm_model), vocab=str(vocab_json))
    if family == "m2m_100":
        return M2M100Tokenizer(vocab_file=str(vocab_json), spm_file=str(spm_model), src_lang="en", tgt_lang="es")
    if family == "mbart":
        return MBartTokenizer(vocab=pieces, src_lang="en_XX", tgt_lang="es_XX")
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def build_tiny_model(family: str, spm_model: Path, out: Path) -> Path:
    """A randomly initialised 2+2-layer model of the family, saved with its tokenizer in save_pretrained layout."""
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(family, spm_model, out)
    # M2M100 puts its language tokens after the sentencepiece ids, beyond len(tokenizer)
    ids = [
        *tokenizer.get_vocab().values(),
        *tokenizer.all_special_ids,
        *getattr(tokenizer, "lang_token_to_id", {}).values(),
    ]
    vocab_size = max(len(tokenizer), max(ids) + 1)
    common = {"vocab_size": vocab_size, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if family == "t5":
        config = AutoConfig.for_model(
            "t5",
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            decoder_start_token_id=tokenizer.pad_token_id,
            **common,
        )
    else:
        config = AutoConfig.for_model(
            family,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=256,
            decoder_start_token_id=tokenizer.eos_token_id if family != "marian" else tokenizer.pad_token_id,
            **common,
        )
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_models(tiny_spm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {family: build_tiny_model(family, tiny_spm, root / family) for family in FAMILIES}
