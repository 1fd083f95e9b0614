"""What the user hands in, checked before any work: files by type and content, output paths by whether they can be
written. Each refusal is a UserInputError: one line naming the problem and the fix (exit code 2 at the CLI).

Options are checked where they are parsed (api.configure, target.TargetSpec); resources against the machine in
engine.resources. This module holds the checks on paths and files that several commands share.
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from autocompress.errors import UserInputError

SQLITE_MAGIC = b"SQLite format 3\x00"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file the user named: missing, a directory, unreadable or not UTF-8 is one line."""
    if not path.exists():
        raise UserInputError(f"{what} {path} does not exist: check the path")
    if path.is_dir():
        raise UserInputError(f"{what} {path} is a directory: give the file itself")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserInputError(f"{what} {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from None
    except OSError as err:
        raise UserInputError(f"{what} {path} cannot be read ({err.strerror}): check its permissions") from None


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (name: value lines); an empty file is an empty mapping."""
    import yaml

    text = read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserInputError(f"{what} {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"{what} {path} must be a mapping of names to values, not a {_kind(data)}")
    return data


def mapping(value: Any, where: str) -> dict[str, Any]:
    """A section of a file that must be a mapping (None, as YAML reads an empty section, is an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be a mapping of names to values, not a {_kind(value)}")
    return value


def integer(value: Any, where: str, low: int = 1) -> int:
    """A whole number of at least `low` (YAML's true/false are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserInputError(f"{where} = {value!r} must be a whole number (at least {low})")
    if value < low:
        raise UserInputError(f"{where} = {value} must be at least {low}")
    return value


def finite(value: float, option: str, low: float = 0.0) -> float:
    if not math.isfinite(value) or value < low:
        raise UserInputError(f"{option} {value} must be a finite number of at least {low:g}")
    return value


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "value")


def check_weights(model_dir: Path) -> None:
    """The weights exist and their headers read (without loading them): a missing, truncated or random weight file
    is refused before a search starts Ray or writes its study."""
    found = [model_dir / name for name in WEIGHTS if (model_dir / name).exists()]
    if not found:
        raise UserInputError(
            f"{model_dir} has no weights ({' or '.join(WEIGHTS[::2])}): save the model with model.save_pretrained(dir)"
        )
    for path in found:
        if path.name.endswith(".index.json"):
            import json

            try:
                shards = sorted(set(json.loads(read_text(path, "weight index"))["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise UserInputError(f"{path} is not a weight index (no weight_map): re-save the model") from None
            for shard in shards:
                _check_weight_file(model_dir / shard)
        else:
            _check_weight_file(path)


def _check_weight_file(path: Path) -> None:
    if not path.is_file():
        raise UserInputError(f"weight file {path} is missing: re-save the model with save_pretrained")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as file:
                file.keys()
        except Exception as err:  # safetensors raises its own error type for every malformed file
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserInputError(f"weight file {path} is damaged ({reason}): re-save or re-download it") from None
        return
    import zipfile

    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive since torch 1.6
        raise UserInputError(f"weight file {path} is not a PyTorch checkpoint: re-save it with save_pretrained")


def check_study_file(path: Path) -> None:
    """An existing study.db must be an SQLite file holding Optuna's tables: a directory, an empty file or another
    file is refused untouched (Optuna would write its tables into it)."""
    if not path.exists():
        return
    if path.is_dir():
        raise UserInputError(f"{path} is a directory, not a study file: remove it or give another directory")
    with open(path, "rb") as file:
        header = file.read(len(SQLITE_MAGIC))
    if not header:
        raise UserInputError(f"{path} is empty (0 bytes), not a study: delete it to start anew, or give another one")
    if header != SQLITE_MAGIC:
        raise UserInputError(f"{path} is not an SQLite file, so not a study: give another directory or move it away")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except sqlite3.DatabaseError as err:
        raise UserInputError(f"{path} is a damaged SQLite file ({err}): restore it from a copy") from None
    if "studies" not in tables:
        raise UserInputError(f"{path} is an SQLite file without an Optuna study: give another directory")


def check_output_dir(path: Path, option: str) -> None:
    """A directory that can be created and written: refused in one line when a parent is a file or the place is
    read-only, before anything is written anywhere."""
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{option} {path} is a file: give a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserInputError(f"{option} {path} lies below {existing}, which is a file: give another directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{option} {path} cannot be written ({existing} is read-only): give another directory")
    probe = existing / f".autocompress-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise UserInputError(f"{option} {path} cannot be written ({err.strerror}): give another directory") from None
