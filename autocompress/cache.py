"""Teacher-derived artifacts (importances, teacher translations) cached by a content hash of what produced them.

Every trial of a study, and every later study on the same teacher and data, reuses them. An entry is built in a
temporary directory and renamed into place, under a lock, so parallel trials never see half an entry or build it twice.
Read-only layers are looked in first: the package ships the demo teacher's entries (autocompress.demo.prepared), found
by the same content hash as any other, so the demo's searches start with them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from autocompress.data import ParallelCorpus

DEFAULT_ROOT = Path(os.environ.get("AUTOCOMPRESS_CACHE", Path.home() / ".cache" / "autocompress" / "artifacts"))
SHIPPED = Path(__file__).resolve().parent / "demo" / "prepared"  # the demo teacher's entries, read-only


def model_fingerprint(model: nn.Module) -> str:
    """Hash of the weights (names, dtypes, shapes, bytes): the same teacher gives the same key wherever it is stored."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return digest.hexdigest()[:20]


def corpus_fingerprint(corpus: ParallelCorpus) -> str:
    digest = hashlib.sha256()
    for src, ref in zip(corpus.sources, corpus.references, strict=True):
        digest.update(f"{src}\t{ref}\n".encode())
    return digest.hexdigest()[:20]


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    hit: bool
    seconds: float  # what building it cost (when it was built, for a hit)


class ArtifactCache:
    def __init__(self, root: Path = DEFAULT_ROOT, shipped: tuple[Path, ...] = (SHIPPED,)) -> None:
        self.root = Path(root)
        self.shipped = tuple(Path(layer) for layer in shipped)  # read first, never written

    @staticmethod
    def digest(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def find(self, kind: str, key: dict[str, Any]) -> CacheEntry | None:
        """The entry for (kind, key) when it is built already (shipped or in the cache), else None."""
        digest = self.digest(key)
        for entry in [layer / kind / digest for layer in self.shipped] + [self.root / kind / digest]:
            if (entry / "meta.json").exists():
                return CacheEntry(entry, True, json.loads((entry / "meta.json").read_text())["seconds"])
        return None

    def get_or_build(self, kind: str, key: dict[str, Any], build: Callable[[Path], None]) -> CacheEntry:
        """The entry for (kind, key), built by build(directory) on a miss."""
        found = self.find(kind, key)
        if found is not None:
            return found
        digest = self.digest(key)
        final = self.root / kind / digest
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(final.parent / f"{digest}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel trial may be building the same entry: wait for it
            if (final / "meta.json").exists():
                return CacheEntry(final, True, json.loads((final / "meta.json").read_text())["seconds"])
            staging = final.parent / f"{digest}.building"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            started = time.perf_counter()
            build(staging)
            seconds = time.perf_counter() - started
            (staging / "meta.json").write_text(json.dumps({"kind": kind, "key": key, "seconds": seconds}, indent=2))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
        return CacheEntry(final, False, seconds)
