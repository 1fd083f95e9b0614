"""Tokenizer round-trip: the shared EN/ES sentencepiece vocabulary as a MarianTokenizer, and each tiny family."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.data import load_demo
from autocompress.demo.tokenizer import train_marian_tokenizer
from autocompress.model.load import DEMO_MODEL, load_tokenizer
from tests.conftest import FAMILIES

SENTENCES = [
    "In the beginning, God created the heavens and the earth.",
    "Y dijo Dios: Sea la luz: y fué la luz.",
    "¿Quién es éste? ¡Jehová!",
    "He said, “Who is this?”",
]


def test_trained_tokenizer_round_trip(tmp_path: Path) -> None:
    dev = load_demo("dev")
    train_marian_tokenizer(dev.sources + dev.references, tmp_path / "tok", vocab_size=500)
    tokenizer = load_tokenizer(tmp_path / "tok")
    assert type(tokenizer).__name__ == "MarianTokenizer"
    assert (tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id) == (0, 1, 2)
    for text in SENTENCES:
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
        target_ids = tokenizer(text_target=text)["input_ids"]
        assert tokenizer.decode(target_ids, skip_special_tokens=True) == text


@pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="demo teacher not installed yet")
def test_demo_tokenizer_round_trip_on_test_split() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL)
    test = load_demo("test")
    for text in test.sources[:200] + test.references[:200]:
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


@pytest.mark.parametrize("family", FAMILIES)
def test_family_tokenizer_round_trip(tiny_models: dict[str, Path], family: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    text = "In the beginning, God created the heavens and the earth."
    # M2M100 does not mark its language tokens special, so skip_special_tokens keeps them: drop them here
    language_ids = set(getattr(tokenizer, "lang_token_to_id", {}).values())
    ids = [i for i in tokenizer(text)["input_ids"] if i not in language_ids]
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text
