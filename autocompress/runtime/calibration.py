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
    """Readers for "encoder" and "decoder": every encoder call, and a seeded sample of decoder steps."""
    runtime = OnnxSeq2Seq(artifact)
    recorded: dict[str, list[dict[str, np.ndarray]]] = {"encoder": [], "decoder": []}
    for start in range(0, len(sentences), batch_size):
        ids, mask = runtime.encode(list(sentences[start : start + batch_size]))
        runtime.generate_ids(ids, mask, max_length, on_feed=lambda graph, feed: recorded[graph].append(feed))
    steps = recorded["decoder"]
    if len(steps) > decoder_samples:
        steps = [steps[i] for i in sorted(random.Random(0).sample(range(len(steps)), decoder_samples))]
    return {"encoder": FeedsReader(recorded["encoder"]), "decoder": FeedsReader(steps)}
