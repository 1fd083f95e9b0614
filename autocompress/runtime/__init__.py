"""Runtimes that translate with an exported artifact: onnxruntime (own loop) or CTranslate2, chosen by the artifact.

Both offer the same surface to the evaluators (autocompress.runtime.base): `manifest` (artifact.json), `task`,
`tokenizer`, `encode` (text → token ids, the task's prefix included), `generate_ids` from token ids (what latency
and memory time) and `translate` from text (what BLEU scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autocompress.export.manifest import Manifest
from autocompress.task import Task

RUNTIMES = ("onnxruntime", "ctranslate2")


class Seq2SeqRuntime(Protocol):
    manifest: Manifest

    @property
    def task(self) -> Task: ...

    @property
    def tokenizer(self) -> Any: ...

    def encode(self, texts: Sequence[str], max_length: int = ...) -> tuple[np.ndarray, np.ndarray]: ...

    def generate_ids(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        max_new_tokens: int,
        beam: int = 1,
        ignore_eos: bool = False,
    ) -> Any: ...

    def translate(
        self, texts: Sequence[str], batch_size: int = 32, max_length: int = 256, beam: int = 1
    ) -> list[str]: ...


def artifact_runtime(directory: Path) -> str:
    return Manifest.read(directory).runtime


def open_artifact(
    directory: Path, threads: int | None = None, providers: Sequence[str] = ("CPUExecutionProvider",)
) -> Seq2SeqRuntime:
    if artifact_runtime(directory) == "onnxruntime":
        from autocompress.runtime.onnx_loop import OnnxSeq2Seq

        return OnnxSeq2Seq(directory, threads=threads, providers=providers)
    from autocompress.runtime.ct2_loop import CT2Seq2Seq

    device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
    return CT2Seq2Seq(directory, threads=threads or 0, device=device)
