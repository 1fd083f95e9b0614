"""Calibration data for static int8: the inputs both graphs see while the fp32 artifact translates real sentences.

The decoder is calibrated on its own traffic, past keys/values included, so activation ranges cover every step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from autocompress.runtime.onnx_loop import OnnxSeq2Seq


class FeedsReader(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._next = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def rewind(self) -> None:
        self._next = iter(self.feeds)


def calibration_readers(
    artifact: Path, sentences: Sequence[str], batch_size: int = 8, max_length: int = 128, decoder_samples: int = 256
) -> dict[str, FeedsReader]:
    """A reader for each graph of the artifact: every encoder and cross graph call, and a seeded sample of the
    decoder steps."""
    runtime = OnnxSeq2Seq(artifact)
    recorded: dict[str, list[dict[str, np.ndarray]]] = {graph: [] for graph in runtime.sessions}
    for start in range(0, len(sentences), batch_size):
        ids, mask = runtime.encode(list(sentences[start : start + batch_size]))
        runtime.generate_ids(ids, mask, max_length, on_feed=lambda graph, feed: recorded[graph].append(feed))
    readers = {}
    for graph, feeds in recorded.items():
        if len(feeds) > decoder_samples:
            feeds = [feeds[i] for i in sorted(random.Random(0).sample(range(len(feeds)), decoder_samples))]
        readers[graph] = FeedsReader(feeds)
    return readers
