"""Load a Hugging Face encoder-decoder model and its tokenizer: a save_pretrained directory or the bundled demo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.errors import UserInputError
from autocompress.inputs import check_weights
from autocompress.manifest import is_artifact as artifact_manifest_exists
from autocompress.model.tokenizer import load_tokenizer
from autocompress.task import Task, bind, resolve_task

DEMO_MODEL = Path(__file__).resolve().parent.parent / "demo" / "teacher"
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "source.spm", "spiece.model", "sentencepiece.bpe.model")


@dataclass
class LoadedModel:
    name: str
    path: Path
    model: object  # transformers PreTrainedModel (imported lazily: the CLI's error paths must stay fast)
    tokenizer: object
    task: Task  # bound to the model and tokenizer: generate() and save_pretrained follow it


def is_artifact(spec: str) -> bool:
    """An exported artifact (autocompress.export): translate and evaluate open it in its runtime."""
    return spec != "demo" and artifact_manifest_exists(Path(spec))


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
    if artifact_manifest_exists(path):
        raise UserInputError(
            f"{path} is an exported artifact (ONNX or CTranslate2): translate and evaluate take it; compressing starts "
            "from the save_pretrained teacher"
        )
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise UserInputError(f"{path} has no config.json: give a directory written by save_pretrained") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserInputError(f"{config_file} cannot be read ({type(err).__name__}): re-save the model") from None
    if not isinstance(config, dict):
        raise UserInputError(f"{config_file} is not a JSON object of settings: re-save the model with save_pretrained")
    if not config.get("is_encoder_decoder", False):
        kind = config.get("model_type", "unknown")
        raise UserInputError(
            f"{path} is a decoder-only model ({kind}): autocompress compresses encoder-decoder translation models "
            "(Marian, MBart, M2M100/NLLB, T5)"
        )
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise UserInputError(f"{path} has no tokenizer: save it beside the model with tokenizer.save_pretrained(dir)")
    return path


def model_task(spec: str, options: Task | dict[str, Any] | None = None) -> Task:
    """The model's task (autocompress.task) without loading its weights: the driver's view."""
    from transformers import GenerationConfig

    path = resolve_model_dir(spec)
    config = read_config(path)
    try:
        generation = GenerationConfig.from_pretrained(path)
    except OSError:  # no generation_config.json: the config holds the generation settings
        generation = None
    return _resolve(config, generation, load_tokenizer(path), options)


def read_config(path: Path) -> Any:
    """The model's transformers config; a model_type this transformers does not know is one line."""
    import transformers
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (ValueError, KeyError, OSError, TypeError) as err:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if model_type is not None:
            raise UserInputError(
                f"{path}: model_type {model_type!r} is not one transformers {transformers.__version__} knows "
                "(a newer transformers may, or config.json is wrong): fix config.json or upgrade transformers"
            ) from None
        raise UserInputError(f"{path}/config.json is not a model config ({_first_line(err)}): re-save it") from None


def _resolve(config: Any, generation: Any, tokenizer: Any, options: Task | dict[str, Any] | None) -> Task:
    given = options.to_dict() if isinstance(options, Task) else dict(options or {})
    return resolve_task(config.model_type, config, generation, tokenizer, **given)


def load_model(spec: str, dtype: str = "float32", task: Task | dict[str, Any] | None = None) -> LoadedModel:
    """The model and tokenizer with the task bound: `task` gives options (prefix, languages) over the model's own."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from autocompress.model.student import STRUCTURE_FILE, load_student

    path = resolve_model_dir(spec)
    check_weights(path)
    tokenizer = load_tokenizer(path)
    try:
        if (path / STRUCTURE_FILE).exists():  # a pruned student: its shapes are not all in its config
            model = load_student(path).to(getattr(torch, dtype))
        else:
            model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"cannot load model from {path}: {_first_line(err)}") from None
    model.eval()
    resolved = _resolve(model.config, model.generation_config, tokenizer, task)
    bind(resolved, model, tokenizer)
    return LoadedModel("demo" if spec == "demo" else str(path), path, model, tokenizer, resolved)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
