"""Translation with a CTranslate2 artifact: batched, greedy or beam, tokens in and out through the tokenizer."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np


class CT2Seq2Seq:
    def __init__(self, directory: Path, threads: int = 0, device: str = "cpu", compute_type: str = "default") -> None:
        import ctranslate2

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.directory = Path(directory)
        self.spec = json.loads((self.directory / "artifact.json").read_text())
        self.translator = ctranslate2.Translator(
            str(directory), device=device, compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
        self.vocabulary: list[str] = json.loads((self.directory / "shared_vocabulary.json").read_text())

    @cached_property
    def tokenizer(self) -> Any:
        """Loaded on first use: measuring memory on token ids must not count transformers."""
        from autocompress.runtime.onnx_loop import load_tokenizer

        return load_tokenizer(self.directory)

    def translate_tokens(self, batch: list[list[str]], max_length: int, beam: int = 1) -> list[list[str]]:
        results = self.translator.translate_batch(
            batch, beam_size=beam, max_decoding_length=max_length, max_batch_size=len(batch)
        )
        return [r.hypotheses[0] for r in results]

    def generate_ids(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        max_new_tokens: int,
        beam: int = 1,
        ignore_eos: bool = False,
    ) -> list[list[str]]:
        """The output tokens of a batch of token ids (padding dropped); ignore_eos decodes exactly max_new_tokens."""
        batch = [
            [self.vocabulary[i] for i in row[mask > 0]] for row, mask in zip(input_ids, attention_mask, strict=True)
        ]
        limits = {"min_decoding_length": max_new_tokens} if ignore_eos else {}
        results = self.translator.translate_batch(
            batch, beam_size=beam, max_decoding_length=max_new_tokens, max_batch_size=len(batch), **limits
        )
        return [r.hypotheses[0] for r in results]

    def translate(self, texts: Sequence[str], batch_size: int = 32, max_length: int = 256, beam: int = 1) -> list[str]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        result = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            encoded = self.tokenizer([texts[i] for i in ids], truncation=True, max_length=max_length)["input_ids"]
            tokens = [self.tokenizer.convert_ids_to_tokens(e) for e in encoded]
            for i, out in zip(ids, self.translate_tokens(tokens, max_length, beam), strict=True):
                result[i] = self.tokenizer.decode(self.tokenizer.convert_tokens_to_ids(out), skip_special_tokens=True)
        return result
