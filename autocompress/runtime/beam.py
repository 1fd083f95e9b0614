"""Beam search over the ONNX decoder, step for step the algorithm of transformers 5's generate(num_beams=k).

Same candidate count (2k), the same finished-hypothesis bookkeeping with length-normalised scores, the same early-stop
heuristic and the same float32 arithmetic (the -1e9 masks included), so that tokens equal PyTorch's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from autocompress.runtime.rules import apply_rules

if TYPE_CHECKING:
    from autocompress.runtime.onnx_loop import OnnxSeq2Seq

NEG = np.float32(-1e9)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-values, axis=-1, kind="stable")[:, :k]


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(values, index.reshape(index.shape + (1,) * (values.ndim - 2)), axis=1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))).astype(np.float32)


def beam_search(
    runtime: OnnxSeq2Seq,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    max_new_tokens: int,
    beams: int,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
) -> np.ndarray:
    spec = runtime.manifest
    batch, k, prompt = input_ids.shape[0], beams, 1
    max_length, cur = prompt + max_new_tokens, prompt
    keep = 2 * k  # one eos id: max(2, 1 + 1) * k candidates
    state = runtime.start(input_ids, attention_mask, copies=k)
    fill = spec.pad_token_id if spec.pad_token_id else spec.eos_token_id
    running = np.full((batch, k, max_length), fill, dtype=np.int64)
    running[:, :, 0] = spec.decoder_start_token_id
    sequences = running.copy()
    running_scores = np.zeros((batch, k), dtype=np.float32)
    running_scores[:, 1:] = NEG
    scores = np.full((batch, k), NEG, dtype=np.float32)
    finished = np.zeros((batch, k), dtype=bool)
    improvable = np.ones((batch, 1), dtype=bool)
    running_origin = np.full((batch, k, max_length - prompt), -1, dtype=np.int64)
    origin = running_origin.copy()
    offsets = (np.arange(batch) * k)[:, None]
    while True:
        logits = state.step(running[:, :, cur - 1].reshape(-1, 1))
        log_probs = apply_rules(_log_softmax(logits.astype(np.float32)), spec.decoding, cur - prompt, max_new_tokens)
        vocab = log_probs.shape[-1]
        totals = (log_probs.reshape(batch, k, vocab) + running_scores[:, :, None]).reshape(batch, -1)
        chosen = _top(totals, keep)
        top_scores = np.take_along_axis(totals, chosen, axis=1)
        from_beam, token = chosen // vocab, chosen % vocab
        top_seqs = _take(running, from_beam)
        top_seqs[:, :, cur] = token
        top_origin = _take(running_origin, from_beam)
        top_origin[:, :, cur - prompt] = from_beam + offsets
        hits = (token == spec.eos_token_id) | (cur + 1 >= max_length)

        live_scores = (top_scores + hits.astype(np.float32) * NEG).astype(np.float32)
        live = _top(live_scores, k)
        running, running_scores = _take(top_seqs, live), np.take_along_axis(live_scores, live, axis=1)
        running_origin = _take(top_origin, live)

        just_finished = hits & (np.arange(keep) < k)[None, :]
        normalised = (top_scores / np.float32((cur + 1 - prompt) ** length_penalty)).astype(np.float32)
        normalised += (finished.all(-1, keepdims=True) & early_stopping).astype(np.float32) * NEG
        normalised += (~improvable).astype(np.float32) * NEG
        normalised += (~just_finished).astype(np.float32) * NEG
        merged_scores = np.concatenate([scores, normalised], axis=1)
        best = _top(merged_scores, k)
        sequences = _take(np.concatenate([sequences, top_seqs], axis=1), best)
        origin = _take(np.concatenate([origin, top_origin], axis=1), best)
        finished = np.take_along_axis(np.concatenate([finished, just_finished], axis=1), best, axis=1)
        scores = np.take_along_axis(merged_scores, best, axis=1)

        state.reorder(running_origin[:, :, cur - prompt].reshape(-1))
        cur += 1
        best_running = running_scores[:, :1] / np.float32((cur - prompt) ** length_penalty)
        worst_finished = np.where(finished, scores.min(1, keepdims=True), NEG)
        improvable = improvable & (best_running > worst_finished).any(-1, keepdims=True)
        open_beam = not (finished.all() and early_stopping is True)
        if not (improvable.any() and open_beam and not hits.all()):
            break
    generated = int(((origin[:, 0] + 1) != 0).sum(1).max())
    return sequences[:, 0, : prompt + generated]
