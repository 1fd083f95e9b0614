"""Runtimes that translate with an exported artifact, one per entry of the registry (runtime/registry.py: onnxruntime
with our own loop, CTranslate2), chosen by the artifact's manifest (`open_artifact`).

Both offer the same surface to the evaluators (autocompress.runtime.base): `manifest` (artifact.json), `task`,
`tokenizer`, `encode` (text → token ids, the task's prefix included), `generate_ids` from token ids (what latency
and memory time) and `translate` from text (what BLEU scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from autocompress.manifest import Manifest
from autocompress.task import Task


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


from autocompress.runtime.registry import open_artifact  # noqa: E402  (the registry names Seq2SeqRuntime above)

__all__ = ["Seq2SeqRuntime", "open_artifact"]
