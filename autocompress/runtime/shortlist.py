"""The lexical shortlist of an onnxruntime artifact: per batch, the output projection scores only the candidates of
its sentences (what CTranslate2's `use_vmap` does, in our loop).

shortlist.npz, written by `write` and read by `OutputShortlist`, holds the output projection (`weight`, output ids ×
hidden size, at the artifact's precision: int8 rows with a `scale` each for the integer dtypes, fp16 or fp32; `bias`)
and the candidates in output ids: `top` (source id × top_k, -1 where the table ends) and `frequent`. The decoder
graph then returns `decoder_hidden` instead of `logits` (autocompress.export.onnx), so the full projection is never
computed. The projection runs in numpy's BLAS, held to the runtime's thread count (threadpoolctl): OpenBLAS would
otherwise start a spinning thread a core for a product this small. Free of torch: the runtime loops import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

SHORTLIST_FILE = "shortlist.npz"
INTEGER_DTYPES = ("int8", "int8_static", "int4", "int16")


def write(
    directory: Path, weight: np.ndarray, bias: np.ndarray, top: np.ndarray, frequent: np.ndarray, dtype: str
) -> Path:
    """The projection is kept at the artifact's precision: an int8 artifact's shortlist costs its int8 size."""
    arrays = {"bias": bias.astype(np.float32), "top": top.astype(np.int32), "frequent": frequent.astype(np.int32)}
    if dtype in INTEGER_DTYPES:
        scale = np.maximum(np.abs(weight).max(axis=1), 1e-12) / 127.0  # symmetric, one scale an output row
        arrays["weight"] = np.round(weight / scale[:, None]).astype(np.int8)
        arrays["scale"] = scale.astype(np.float32)
    else:
        arrays["weight"] = weight.astype(np.float16 if dtype in ("fp16", "bf16") else np.float32)
    path = Path(directory) / SHORTLIST_FILE
    np.savez(path, **arrays)
    return path


class OutputShortlist:
    """`select(source ids)` once a batch, then `logits(hidden)` a step (inside `limited()`): candidates scored, the
    rest -inf, so the decoding rules and beam search work on the whole vocabulary unchanged."""

    def __init__(self, directory: Path, always: Iterable[int | None], threads: int | None = None) -> None:
        from threadpoolctl import ThreadpoolController

        self.blas, self.threads = ThreadpoolController(), threads or 1
        with np.load(Path(directory) / SHORTLIST_FILE) as data:
            self.weight, self.bias = data["weight"], data["bias"]
            self.scale = data["scale"] if "scale" in data else None
            self.top, self.frequent = data["top"], data["frequent"]
        self.always = np.array(sorted({int(i) for i in always if i is not None}), dtype=np.int64)
        self.size = self.weight.shape[0]
        # set by select(), which the loop calls for every batch before its first step
        self.ids = self.candidate_bias = np.zeros(0, dtype=np.float32)
        self.projection = np.zeros((self.weight.shape[1], 0), dtype=np.float32)

    def _rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates' rows as fp32, transposed as a view: BLAS reads it as is, no copy."""
        rows = self.weight[ids]
        if self.scale is not None:
            rows = np.multiply(rows, self.scale[ids, None], dtype=np.float32)
        return rows.astype(np.float32, copy=False).T, self.bias[ids]

    def select(self, input_ids: np.ndarray) -> None:
        sources = input_ids[(input_ids >= 0) & (input_ids < len(self.top))]
        found = self.top[np.unique(sources)].ravel()
        self.ids = np.unique(np.concatenate([found[found >= 0], self.frequent, self.always]))
        self.projection, self.candidate_bias = self._rows(self.ids)

    def limited(self) -> Any:
        """Around a whole generation: BLAS held to the runtime's threads (once, not a step)."""
        return self.blas.limit(limits=self.threads, user_api="blas")

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        scores = np.full((hidden.shape[0], self.size), -np.inf, dtype=np.float32)
        scores[:, self.ids] = hidden.astype(np.float32, copy=False) @ self.projection + self.candidate_bias
        return scores
