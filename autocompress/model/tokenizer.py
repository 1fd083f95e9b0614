"""Loading a saved tokenizer (a model's, an artifact's): light, so that the runtimes can import it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocompress.errors import UserInputError


def load_tokenizer(path: Path) -> Any:
    """A saved tokenizer (a model's, an artifact's). MarianTokenizer warns that sacremoses is missing, yet
    (transformers 5.24) never calls its normaliser: the warning is noise on every run, so it is silenced here."""
    import warnings

    from transformers import AutoTokenizer

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
            return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserInputError(f"cannot load the tokenizer of {path}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
