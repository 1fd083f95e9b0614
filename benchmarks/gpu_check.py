"""The device check: every CUDA path of autocompress once, on one GPU, in under 8 minutes; numbers to results/gpu/.

    python benchmarks/gpu_check.py --dry-run     # on CPU: the plan and the install commands, nothing run
    python benchmarks/gpu_check.py               # on a CUDA machine: install, run, write results/gpu/, exit 0 or 1

Steps, each timed and recorded (results/gpu/check.json, check.md) with the GPU's name and the driver, CUDA, torch,
onnxruntime and CTranslate2 versions; any failing step makes the exit status 1, and the steps after it still run
where they can:
1. install from the repository's own files (the machine starts bare): torch (a CUDA build where the machine's index
   has one), the package at the constraints, onnxruntime-gpu in place of onnxruntime at the same version;
2. the environment: nvidia-smi, torch.cuda, onnxruntime's providers, CTranslate2's CUDA compute types;
3. the tests marked `cuda` (pytest -m cuda; none marked is recorded, not a failure);
4. every precision path on the demo: `autocompress search --space benchmarks/spaces/gpu_check.yaml` runs its eight
   start recipes (the teacher in onnxruntime fp32/fp16/int4 and CTranslate2 float16/bfloat16/int8, a pruned student
   distilled in bf16 in onnxruntime fp16 and CTranslate2 float16), each exported and measured on the GPU;
5. two workers sharing the GPU: the same space with `--workers 2 --gpus-per-trial 0.5`, four trials (the pruned
   student distils in bf16 beside another trial). Not `--space cuda`: it slices students from the elastic student,
   whose one-off training (`autocompress prepare --space cuda`, 20000 steps) does not fit the 8 minutes.
A refused path (a precision the device cannot run) is a failed trial with its reason in the study: the step reads
the study and lists each trial's state and reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "gpu"
PY = sys.executable


def plan(out: Path) -> list[tuple[str, list[str]]]:
    """(step name, command) in order."""
    ort = _pinned("onnxruntime")
    return [
        ("install torch", [PY, "-m", "pip", "install", "-q", "torch==2.13.0"]),
        ("install autocompress", [PY, "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", ".[test]"]),
        (
            "install onnxruntime-gpu",
            ["sh", "-c", f"{PY} -m pip uninstall -y -q onnxruntime && {PY} -m pip install -q onnxruntime-gpu=={ort}"],
        ),
        ("environment", [PY, str(Path(__file__).resolve()), "--environment", "--out", str(out)]),
        ("tests marked cuda", [PY, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]),
        ("every precision path", _search(out / "paths", "8", "0")),
        ("two workers on one GPU", _search(out / "shared", "4", "1", "--workers", "2", "--gpus-per-trial", "0.5")),
    ]


def _search(out: Path, budget: str, seed: str, *extra: str) -> list[str]:
    space = "benchmarks/spaces/gpu_check.yaml"
    return [PY, "-m", "autocompress", "search", "--space", space, "--budget", budget, "--seed", seed, *extra,
            "--out", str(out)]  # fmt: skip


def _pinned(package: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit(f"constraints.txt pins no {package}")


def environment() -> dict[str, Any]:
    """What this machine's GPU stack is, as the libraries themselves report it."""
    found: dict[str, Any] = {}
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found["nvidia-smi"] = smi.stdout.strip() or smi.stderr.strip()
    import ctranslate2
    import onnxruntime
    import torch

    found["torch"] = torch.__version__
    found["torch.cuda"] = torch.version.cuda
    found["cuda available"] = torch.cuda.is_available()
    found["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    found["onnxruntime"] = onnxruntime.__version__
    found["onnxruntime providers"] = onnxruntime.get_available_providers()
    found["ctranslate2"] = ctranslate2.__version__
    try:
        found["ctranslate2 cuda compute types"] = sorted(ctranslate2.get_supported_compute_types("cuda"))
    except (RuntimeError, ValueError) as err:
        found["ctranslate2 cuda compute types"] = f"none: {err}"
    return found


def trials_of(study_dir: Path) -> list[dict[str, Any]]:
    """Each trial of a study the check ran: state, values, reason (a refused path says why)."""
    import optuna

    storage = f"sqlite:///{study_dir / 'study.db'}"
    if not (study_dir / "study.db").exists():
        return []
    study = optuna.load_study(study_name=study_dir.name, storage=storage)
    return [
        {
            "trial": t.number,
            "state": t.state.name,
            "recipe": t.user_attrs.get("recipe_id"),
            "values": t.user_attrs.get("values"),
            "reason": t.user_attrs.get("fail_reason"),
        }
        for t in study.trials
    ]


def run(out: Path, budget_s: float) -> int:
    out.mkdir(parents=True, exist_ok=True)
    steps, started = [], time.monotonic()
    for name, command in plan(out):
        left = budget_s - (time.monotonic() - started)
        if left <= 0:
            steps.append({"step": name, "ok": False, "seconds": 0, "note": "not run: the time budget was spent"})
            continue
        began = time.monotonic()
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=left, check=False)
            ok, note = done.returncode == 0, (done.stdout + done.stderr)[-2000:]
            if name == "tests marked cuda" and done.returncode == 5:
                ok, note = True, "no test is marked cuda"
        except subprocess.TimeoutExpired:
            ok, note = False, f"cut at the budget ({left:.0f} s left)"
        steps.append({"step": name, "ok": ok, "seconds": round(time.monotonic() - began, 1), "note": note})
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({steps[-1]['seconds']} s)", flush=True)
    report = {
        "environment": json.loads((out / "environment.json").read_text()) if (out / "environment.json").exists()
        else None,
        "steps": steps,
        "paths": trials_of(out / "paths"),
        "shared": trials_of(out / "shared"),
    }  # fmt: skip
    (out / "check.json").write_text(json.dumps(report, indent=2, default=str))
    lines = ["# Device check", "", f"`python benchmarks/gpu_check.py` — {report['environment']}", "",
             "| step | ok | seconds |", "|---|---|---:|"]  # fmt: skip
    lines += [f"| {s['step']} | {'yes' if s['ok'] else 'NO'} | {s['seconds']} |" for s in steps]
    lines += ["", "| study | trial | state | recipe | values or reason |", "|---|---:|---|---|---|"]
    for study in ("paths", "shared"):
        for t in report[study]:
            lines.append(f"| {study} | {t['trial']} | {t['state']} | {t['recipe']} | {t['values'] or t['reason']} |")
    (out / "check.md").write_text("\n".join(lines) + "\n")
    failed = [s["step"] for s in steps if not s["ok"]]
    failed += [f"paths trial {t['trial']}" for t in report["paths"] if t["state"] != "COMPLETE"]
    print("failed: " + ", ".join(failed) if failed else "every step passed", flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the install commands only")
    parser.add_argument("--environment", action="store_true", help=argparse.SUPPRESS)  # step 2, in its own process
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for every step together (default 8 min)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.environment:
        args.out.mkdir(parents=True, exist_ok=True)
        found = environment()
        (args.out / "environment.json").write_text(json.dumps(found, indent=2, default=str))
        print(json.dumps(found, indent=2, default=str))
        return 0 if found["cuda available"] else 1
    if args.dry_run:
        print(f"device check plan (budget {args.budget:.0f} s, results to {args.out}):")
        for number, (name, command) in enumerate(plan(args.out), 1):
            print(f"{number}. {name}:\n     {shlex.join(command)}")
        return 0
    return run(args.out, args.budget)


if __name__ == "__main__":
    sys.exit(main())
