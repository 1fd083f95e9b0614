"""Token-bucketed batches of (source, target) id sequences, shared by teacher training, scoring and distillation."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], targets: Sequence[str], max_length: int
) -> tuple[list[list[int]], list[list[int]]]:
    src = tokenizer(list(sources), truncation=True, max_length=max_length)["input_ids"]
    tgt = tokenizer(text_target=list(targets), truncation=True, max_length=max_length)["input_ids"]
    return src, tgt


def token_batches(lengths: list[int], max_tokens: int, rng: random.Random) -> list[list[int]]:
    """Sort by length inside shuffled chunks so padding stays small; each batch holds about max_tokens (padded)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = 4096
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batch: list[int] = []
        longest = 0
        for i in part:
            longest_if_added = max(longest, lengths[i])
            if batch and longest_if_added * (len(batch) + 1) > max_tokens:
                batches.append(batch)
                batch, longest_if_added = [], lengths[i]
            batch.append(i)
            longest = longest_if_added
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def collate(src: list[list[int]], tgt: list[list[int]], ids: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Model inputs for one batch; label padding is -100 so the loss ignores it."""
    enc = pad([src[i] for i in ids], pad_id)
    return {"input_ids": enc, "attention_mask": (enc != pad_id).long(), "labels": pad([tgt[i] for i in ids], -100)}
