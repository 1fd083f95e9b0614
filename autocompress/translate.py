"""Translate with a PyTorch Hugging Face seq2seq model: batched, greedy or beam, lengths sorted to cut padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from autocompress import arch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.inference_mode()
def generate_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    beam: int = 1,
    batch_size: int = 32,
    max_length: int = 256,
) -> list[list[int]]:
    """generate()'s rows (decoder start, tokens, eos, padding) for each text, in the order given; batches are
    formed longest first, so that padding stays small and a given batch size always groups the same sentences."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out: list[list[int]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in ids], return_tensors="pt", padding=True, truncation=True, max_length=max_length
        ).to(model.device)
        generated = model.generate(
            **enc,
            num_beams=beam,
            do_sample=False,
            max_new_tokens=max_length,
            early_stopping=True if beam > 1 else False,
            **arch.generate_kwargs(model),
        )
        for i, row in zip(ids, generated.tolist(), strict=True):
            out[i] = row
    return out


def translate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    beam: int = 1,
    batch_size: int = 32,
    max_length: int = 256,
) -> list[str]:
    rows = generate_ids(model, tokenizer, texts, beam=beam, batch_size=batch_size, max_length=max_length)
    return tokenizer.batch_decode(rows, skip_special_tokens=True)
