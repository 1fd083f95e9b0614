"""Translate with a PyTorch Hugging Face seq2seq model: batched, greedy or beam, lengths sorted to cut padding.

ModelTranslator puts a model behind the runtimes' translate(), so that `autocompress translate` and `evaluate` run a
save_pretrained directory and an exported artifact alike (autocompress.cli.models.open_translator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from autocompress.model import arch
from autocompress.model.vocabulary import target_ids, to_teacher_ids
from autocompress.task import MAX_SOURCE_TOKENS, Task, decode, special_ids

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
    task: Task | None = None,
) -> list[list[int]]:
    """generate()'s rows (decoder start, tokens, eos, padding) for each text, in the order given; batches are
    formed longest first, so that padding stays small and a given batch size always groups the same sentences.
    The task's prefix is put before each text; its languages are bound to the model and tokenizer already."""
    texts = (task or Task()).sources(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out: list[list[int]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in ids], return_tensors="pt", padding=True, truncation=True, max_length=MAX_SOURCE_TOKENS
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


def output_special_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """In the tokenizer's ids (a trimmed model's configs speak its own: mapped back)."""
    generation, ids = model.generation_config, target_ids(model)
    extra = [generation.forced_bos_token_id, model.config.decoder_start_token_id]
    return special_ids(tokenizer, [ids[i] if ids is not None and i is not None else i for i in extra])


def translate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    beam: int = 1,
    batch_size: int = 32,
    max_length: int = 256,
    task: Task | None = None,
) -> list[str]:
    rows = generate_ids(model, tokenizer, texts, beam=beam, batch_size=batch_size, max_length=max_length, task=task)
    return decode(tokenizer, to_teacher_ids(rows, target_ids(model)), output_special_ids(model, tokenizer))


class Translator(Protocol):
    def translate(
        self, texts: Sequence[str], batch_size: int = 32, max_length: int = 256, beam: int = 1
    ) -> list[str]: ...


@dataclass
class ModelTranslator:
    """A PyTorch model with its task, behind the runtimes' translate()."""

    model: Any
    tokenizer: Any
    task: Task

    def translate(self, texts: Sequence[str], batch_size: int = 32, max_length: int = 256, beam: int = 1) -> list[str]:
        return translate_texts(self.model, self.tokenizer, texts, beam, batch_size, max_length, self.task)
