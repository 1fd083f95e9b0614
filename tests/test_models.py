"""Model input: the four encoder-decoder families load and translate; bad directories get one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocompress.cli import main
from autocompress.errors import UserInputError
from autocompress.model.load import load_model, resolve_model_dir
from autocompress.model.translate import translate_texts
from tests.conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_loads_and_translates(tiny_models: dict[str, Path], family: str) -> None:
    loaded = load_model(str(tiny_models[family]))
    assert loaded.model.config.model_type == family
    out = translate_texts(loaded.model, loaded.tokenizer, ["In the beginning.", "God said."], max_length=8)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    again = translate_texts(loaded.model, loaded.tokenizer, ["In the beginning.", "God said."], beam=2, max_length=8)
    assert len(again) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluate_cli_on_user_model(
    tiny_models: dict[str, Path], family: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d.tsv").write_text("In the beginning.\tEn el principio.\nGod said.\tDios dijo.\n")
    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_models[family]),
            "--tsv",
            str(tmp_path / "d.tsv"),
            "--max-length",
            "8",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["sentences"] == 2
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert result["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")


def _decoder_only(path: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(path)
    return path


def test_bad_model_inputs(tmp_path: Path, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    no_tokenizer = tmp_path / "no_tok"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text((tiny_models["marian"] / "config.json").read_text())
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_bytes(b"\x00\xff not json")
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        str(_decoder_only(tmp_path / "gpt2")): "decoder-only",
        str(no_tokenizer): "has no tokenizer",
        str(garbage): "cannot be read",
        str(a_file): "is a file",
        str(empty): "has no config.json",
        str(tmp_path / "missing"): "does not exist",
    }
    capsys.readouterr()  # drop the fixtures' save progress bars
    for spec, expected in cases.items():
        with pytest.raises(UserInputError, match=expected):
            resolve_model_dir(spec)
        code = main(["translate", "--model", spec])
        err = capsys.readouterr().err
        assert code == 2, spec
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_number_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--beam", "0"]) == 2
    assert "--beam must be at least 1" in capsys.readouterr().err
