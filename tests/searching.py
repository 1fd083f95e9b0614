"""What the search tests share: tiny data and spaces for the tiny Marian, and the command line run as a user runs it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autocompress.data import load_demo

# give_up: tiny random models run int8 about 1.3× slower than fp32, so a search test about something else would see
# its candidates cut short now and then (tests/test_plan.py tests cutting with give_up set)
SPACE = """
target: {{device: cpu, threads: 1, batch_sizes: {batches}, max_length: 10, latency_sentences: 4, warmup: 1, repeats: 2,
         give_up: {give_up}}}
evaluation: {{dev_sentences: 12}}
passes:
  precision:
    runtime: {runtime}
    dtype: {dtype}
  layers:
    decoder_layers: {layers}
  distill:
    method: finetune
    steps: {steps}
    lr: {lr}
    max_tokens: 200
"""


SPACE_DEFAULTS = {"steps": 3, "lr": 1.0e-3, "batches": "[1, 4]", "give_up": "null"}
WIDE = dict(runtime="{choice: [onnxruntime, ctranslate2]}", dtype="{choice: [fp32, int8]}", layers="{int: [1, 2]}")


def search_setup(model: Path, work: Path) -> dict[str, Any]:
    """Train and dev TSVs and the spaces below, written into work; a card with a licence for the model (an exported
    model's card inherits it)."""
    (model / "README.md").write_text("---\nlicense: mit\nlanguage: [en, es]\n---\n# tiny test model\n")
    for name, corpus in (("train", load_demo("train").head(300)), ("dev", load_demo("dev").head(24))):
        rows = (f"{s}\t{r}" for s, r in zip(corpus.sources, corpus.references, strict=True))
        (work / f"{name}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    spaces = {
        "wide": WIDE,
        "two": dict(runtime="onnxruntime", dtype="{choice: [fp32, int8]}", layers=1),
        "four": dict(runtime="{choice: [onnxruntime, ctranslate2]}", dtype="{choice: [fp32, int8]}", layers=1),
        # Every trial trains its own student for seconds, so a signal sent while one runs finds it still running.
        "slow": dict(runtime="onnxruntime", dtype="int8", layers=1, steps=300, lr="{float: [1.0e-4, 1.0e-3]}"),
        "batch8": dict(runtime="onnxruntime", dtype="{choice: [fp32, int8]}", layers=1, batches="[1, 8]"),
    }
    for name, fields in spaces.items():
        (work / f"{name}.yaml").write_text(SPACE.format(**{**SPACE_DEFAULTS, **fields}))
    return {"model": str(model), "work": work}


def options(setup: dict[str, Any], out: Path, space: str = "wide", **extra: Any) -> dict[str, Any]:
    work = setup["work"]
    return {
        "space": str(work / f"{space}.yaml"),
        "train": str(work / "train.tsv"),
        "dev": str(work / "dev.tsv"),
        "out": out,
        "quiet": True,
        **extra,
    }


def cli(
    args: list[str], env: dict[str, str] | None = None, stdin: str | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autocompress", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        check=False,
        timeout=timeout,
    )


def cli_args(setup: dict[str, Any], out: Path, *extra: str, space: str = "wide") -> list[str]:
    work = setup["work"]
    return [
        "search",
        "--model",
        setup["model"],
        "--space",
        str(work / f"{space}.yaml"),
        "--train",
        str(work / "train.tsv"),
        "--dev",
        str(work / "dev.tsv"),
        "--out",
        str(out),
        *extra,
    ]


def trial_states(db: Path) -> list[tuple[int, str]]:
    """The trials' numbers and states; none while the driver is still creating the study (the file exists before
    optuna's tables do)."""
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select number, state from trials order by number").fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise


def wait_until_one_done_and_one_running(out: Path, proc: subprocess.Popen) -> None:
    """Mid-search: a trial completed and another running (the moment to kill or interrupt the search)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = trial_states(out / "study.db") if (out / "study.db").exists() else []
        if any(s == "COMPLETE" for _, s in states) and any(s == "RUNNING" for _, s in states):
            return
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"no trial completed with another running: {proc.stderr.read() if proc.stderr else ''}")
