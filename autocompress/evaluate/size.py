"""Size on disk of what a deployment ships: the graphs and their weights, a shortlist's projection included (not the
tokenizer or the metadata)."""

from __future__ import annotations

from pathlib import Path

from autocompress.evaluate import Measurement
from autocompress.export.manifest import Manifest

WEIGHT_SUFFIXES = (".onnx", ".data", ".onnx_data", ".bin", ".npz")


def artifact_size(artifact: Path) -> dict[str, Measurement]:
    files = [p for p in sorted(artifact.rglob("*")) if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    total = sum(p.stat().st_size for p in files)
    precision = Manifest.read(artifact).dtype
    return {
        "size_mb": Measurement("size_mb", round(total / 2**20, 3), "MiB", f"files:{len(files)}|precision:{precision}")
    }
