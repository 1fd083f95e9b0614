"""Peak memory of inference, measured in a fresh process so that nothing else the caller holds is counted.

The child loads the artifact's sessions with the target's threads, translates one batch of the largest batch size
from token ids (no transformers imported), and reports its peak RSS and the RSS it had before loading the sessions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from autocompress.evaluate import Measurement
from autocompress.target import TargetSpec


def measure_memory(artifact: Path, sentences: list[str], target: TargetSpec) -> dict[str, Measurement]:
    from autocompress.runtime.base import ArtifactRuntime

    batch = sentences[: max(target.batch_sizes)]
    ids, mask = ArtifactRuntime(artifact).encode(batch)  # the tokenizer alone, no sessions
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "ids.npy", ids)
        np.save(Path(tmp) / "mask.npy", mask)
        args = [sys.executable, "-m", "autocompress.evaluate.memory", str(artifact), tmp, json.dumps(target.to_dict())]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    signature = f"device:{target.device}|threads:{target.threads}|batch:{len(batch)}|{target.decoding_signature()}"
    return {
        "peak_rss_mb": Measurement(
            "peak_rss_mb", found["peak_mb"], "MiB", signature, {"baseline_mb": found["base_mb"]}
        ),
    }


def _probe(artifact: Path, inputs: Path, target: TargetSpec) -> dict[str, float]:
    from autocompress.runtime import open_artifact

    base = _high_water_mb()
    runtime = open_artifact(artifact, threads=target.threads, providers=target.providers)
    runtime.generate_ids(np.load(inputs / "ids.npy"), np.load(inputs / "mask.npy"), target.max_length, beam=target.beam)
    return {"base_mb": round(base, 1), "peak_mb": round(_high_water_mb(), 1)}


def _high_water_mb() -> float:
    """Peak RSS of this process image. Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a child
    of a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory is measured on Linux")


if __name__ == "__main__":
    print(json.dumps(_probe(Path(sys.argv[1]), Path(sys.argv[2]), TargetSpec.from_dict(json.loads(sys.argv[3])))))
