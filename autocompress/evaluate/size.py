"""Size on disk of what our runtime loop loads: its graphs or model and their weights, a shortlist's projection
included (not the tokenizer, the metadata, or a finished onnxruntime artifact's merged decoder, which is there for
other loaders: autocompress.export.layout)."""

from __future__ import annotations

from pathlib import Path

from autocompress.evaluate import Measurement
from autocompress.manifest import Manifest


def artifact_size(artifact: Path) -> dict[str, Measurement]:
    manifest = Manifest.read(artifact)
    files = [artifact / name for name in manifest.loop_files()]
    files += [path.with_name(f"{path.name}.data") for path in files]  # external weights beside a large graph
    if manifest.shortlist and manifest.shortlist.get("file"):
        files.append(artifact / manifest.shortlist["file"])
    files = [path for path in files if path.is_file()]
    total = sum(path.stat().st_size for path in files)
    signature = f"files:{len(files)}|precision:{manifest.dtype}"
    return {"size_mb": Measurement("size_mb", round(total / 2**20, 3), "MiB", signature)}
