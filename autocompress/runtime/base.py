"""What every artifact runtime shares: the manifest, the tokenizer bound to the artifact's task, text ↔ token ids.

It reads the artifact's manifest (autocompress.manifest). A runtime subclass supplies `generate_ids` (token
ids in, output ids out: what latency and memory time); from it this base gives `translate` (text in, text out: what
BLEU scores), with the task's source prefix applied and every special and language token kept out of the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from autocompress.manifest import Manifest
from autocompress.model.tokenizer import load_tokenizer
from autocompress.task import MAX_SOURCE_TOKENS, Task, bind_tokenizer, decode, special_ids


class ArtifactRuntime:
    directory: Path
    manifest: Manifest

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.manifest = Manifest.read(self.directory)

    @property
    def task(self) -> Task:
        return Task.from_dict(self.manifest.task)

    @cached_property
    def tokenizer(self) -> Any:
        """Loaded on first use: measuring memory on token ids must not count transformers."""
        tokenizer = load_tokenizer(self.directory)
        bind_tokenizer(self.task, tokenizer)
        return tokenizer

    @cached_property
    def output_special_ids(self) -> set[int]:
        """In the tokenizer's ids (a trimmed artifact's manifest speaks its own: mapped back)."""
        extra = [self.manifest.decoding.get("forced_bos_token_id"), self.manifest.decoder_start_token_id]
        ids = self.manifest.target_ids
        return special_ids(self.tokenizer, [ids[i] if ids is not None and i is not None else i for i in extra])

    def encode(self, texts: Sequence[str], max_length: int = MAX_SOURCE_TOKENS) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask (padded to the longest) of raw texts: the task's prefix goes first."""
        enc = self.tokenizer(
            self.task.sources(texts), return_tensors="np", padding=True, truncation=True, max_length=max_length
        )
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    def decode(self, rows: Any) -> list[str]:
        """Text of output rows; a trimmed artifact's ids (autocompress.model.vocabulary) go back to the tokenizer's."""
        ids = self.manifest.target_ids
        rows = [[ids[int(t)] for t in row] for row in rows] if ids is not None else rows
        return decode(self.tokenizer, rows, self.output_special_ids)

    def generate_ids(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        max_new_tokens: int,
        beam: int = 1,
        ignore_eos: bool = False,
    ) -> Any:
        raise NotImplementedError

    def translate(self, texts: Sequence[str], batch_size: int = 32, max_length: int = 256, beam: int = 1) -> list[str]:
        """Batches formed longest first (as autocompress.model.translate does): a batch size groups the same texts."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        result = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            input_ids, mask = self.encode([texts[i] for i in ids])
            rows = self.generate_ids(input_ids, mask, max_length, beam=beam)
            for i, text in zip(ids, self.decode(rows), strict=True):
                result[i] = text
        return result
