"""The demo teacher's derived artifacts, shipped in the package so that the demo's searches start with them.

    python -m autocompress.demo.ship_prepared [--space cpu]

Builds — or finds in the user's cache — what `autocompress prepare` builds for the demo teacher, its training set and
each space given (importance scores, the teacher's translations of the whole training set, the elastic student), and
writes each entry into autocompress/demo/prepared/<kind>/<hash>/, the read-only layer autocompress.cache looks in
first, under the same content hash. Compact: token ids as int16, the elastic student's weights as fp16 (the teacher
itself ships in fp16). Reproducible like the teacher: every step is seeded, and the building cost is kept in each
entry's meta.json, so benchmarks can count it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from autocompress.cache import SHIPPED, ArtifactCache

INT16_MAX = 2**15 - 1


def compact(entry: Path, to: Path) -> None:
    """Copy a cache entry, its int32 ids narrowed to int16 and its fp32 weights to fp16 where that loses nothing
    that matters (ids < 32768; the weights are a student's starting point, trained on by every trial)."""
    from safetensors.torch import load_file, save_file

    staging = to.with_name(to.name + ".writing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(entry, staging)
    for path in staging.rglob("*.safetensors"):
        tensors = load_file(str(path))
        narrowed = {name: _narrow(tensor) for name, tensor in tensors.items()}
        save_file(narrowed, str(path), metadata={"format": "pt"})
    meta = json.loads((staging / "meta.json").read_text())
    (staging / "meta.json").write_text(json.dumps({**meta, "shipped": "int16 ids, fp16 weights"}, indent=2))
    shutil.rmtree(to, ignore_errors=True)
    staging.rename(to)


def _narrow(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dtype in (torch.int32, torch.int64) and tensor.numel() and int(tensor.abs().max()) <= INT16_MAX:
        return tensor.to(torch.int16)
    if tensor.dtype == torch.float32 and tensor.dim() >= 2:  # weight matrices; scores and norms stay exact
        return tensor.to(torch.float16)
    return tensor


def main(argv: list[str] | None = None) -> int:
    from autocompress.data import load_demo
    from autocompress.engine.model_info import model_info
    from autocompress.model.load import load_model
    from autocompress.space import load_space, teacher_artifacts
    from autocompress.teacher.context import TeacherContext
    from autocompress.teacher.elastic import settings_from_space, uses_elastic
    from autocompress.teacher.prepare import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", action="append", help="a space whose artifacts to ship (default: cpu)")
    args = parser.parse_args(argv)
    loaded = load_model("demo")
    ctx = TeacherContext(
        loaded.model, loaded.tokenizer, load_demo("train"), ArtifactCache(shipped=()), task=loaded.task, log=print
    )
    entries: dict[tuple[str, str], Path] = {}
    for name in args.space or ["cpu"]:
        space = load_space(name)
        elastic = settings_from_space(space, model_info("demo").layers) if uses_elastic(space) else None
        for kind, entry in prepare(ctx, teacher_artifacts(space), elastic).items():
            entries[(kind, Path(entry["path"]).name)] = Path(entry["path"])
    shutil.rmtree(SHIPPED, ignore_errors=True)
    for (kind, digest), path in sorted(entries.items()):
        (SHIPPED / kind).mkdir(parents=True, exist_ok=True)
        compact(path, SHIPPED / kind / digest)
        size = sum(f.stat().st_size for f in (SHIPPED / kind / digest).rglob("*") if f.is_file())
        print(f"shipped {kind} ({size / 2**20:.1f} MiB) at {SHIPPED / kind / digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
