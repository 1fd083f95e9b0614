"""Load a Hugging Face encoder-decoder model and its tokenizer: a save_pretrained directory or the bundled demo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autocompress.errors import UserInputError

DEMO_MODEL = Path(__file__).resolve().parent / "demo" / "teacher"
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "source.spm", "spiece.model", "sentencepiece.bpe.model")


@dataclass
class LoadedModel:
    name: str
    path: Path
    model: object  # transformers PreTrainedModel (imported lazily: the CLI's error paths must stay fast)
    tokenizer: object


def resolve_model_dir(spec: str) -> Path:
    """'demo' → the bundled teacher; anything else is a directory in save_pretrained layout, checked here."""
    if spec == "demo":
        if not (DEMO_MODEL / "config.json").exists():
            raise UserInputError(
                "the demo teacher is not in this installation: train it with `autocompress train-teacher --install`"
            )
        return DEMO_MODEL
    path = Path(spec)
    if not path.exists():
        raise UserInputError(f"model directory {path} does not exist: give a save_pretrained directory or 'demo'")
    if not path.is_dir():
        raise UserInputError(f"model {path} is a file: give the directory written by save_pretrained")
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise UserInputError(f"{path} has no config.json: give a directory written by save_pretrained") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserInputError(f"{config_file} cannot be read ({type(err).__name__}): re-save the model") from None
    if not config.get("is_encoder_decoder", False):
        kind = config.get("model_type", "unknown")
        raise UserInputError(
            f"{path} is a decoder-only model ({kind}): autocompress compresses encoder-decoder translation models "
            "(Marian, MBart, M2M100/NLLB, T5)"
        )
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise UserInputError(f"{path} has no tokenizer: save it beside the model with tokenizer.save_pretrained(dir)")
    return path


def load_model(spec: str, dtype: str = "float32") -> LoadedModel:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from autocompress.student import STRUCTURE_FILE, load_student
    from autocompress.teacher.tokenizer import load_demo_tokenizer

    path = resolve_model_dir(spec)
    try:
        tokenizer = load_demo_tokenizer(path) if path == DEMO_MODEL else AutoTokenizer.from_pretrained(path)
        if (path / STRUCTURE_FILE).exists():  # a pruned student: its shapes are not all in its config
            model = load_student(path).to(getattr(torch, dtype))
        else:
            model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(f"cannot load model from {path}: {first_line}") from None
    model.eval()
    return LoadedModel("demo" if spec == "demo" else str(path), path, model, tokenizer)
