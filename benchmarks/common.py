"""What every benchmark writes: its table as markdown and CSV in results/benchmarks/, with the machine it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"
SEARCH_WORKDIR = Path.home() / ".cache" / "autocompress" / "bench-search"
README_SEARCH = ["--budget", "6", "--seed", "0"]  # the README's main command, seeded


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    packages = ", ".join(f"{p} {version(p)}" for p in ("torch", "onnxruntime", "ctranslate2", "optuna", "ray"))
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}; {packages}"


def write(name: str, frame: pd.DataFrame, title: str, intro: str, after: list[str], out: Path = RESULTS) -> str:
    """results/benchmarks/<name>.md and .csv; returns the markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{name}.csv", index=False)
    table = frame.to_markdown(index=False)
    text = "\n\n".join([f"# {title}", intro, table, *after, f"Machine: {machine()}."])
    (out / f"{name}.md").write_text(text + "\n")
    return table


def default_search(workdir: Path = SEARCH_WORKDIR) -> Path:
    """The README's main search (seeded), run once into workdir and reused: its study, trials and best/."""
    out = workdir / "search"
    if not (out / "best" / "artifact.json").exists():
        command = [sys.executable, "-m", "autocompress", "search", *README_SEARCH, "--out", str(out)]
        print("running", " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)
    return out
