"""results/benchmarks/README.md from the tables the benchmark scripts wrote, so the summary never drifts from them.

python benchmarks/summary.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS

SECTIONS = (
    ("search_efficiency", "python benchmarks/search_efficiency.py"),
    ("alternatives", "python benchmarks/alternatives.py  # students.py runs it with --study on its students search"),
    ("olive_peer", "pip install -e '.[peer]' && python benchmarks/olive_peer.py"),
    ("trial_cost", "python benchmarks/trial_cost.py"),
    ("families", "python benchmarks/families.py"),
    (
        "student_init",
        "python benchmarks/student_init.py --structures A,C && "
        "python benchmarks/student_init.py --structures A --inits elastic --lr 0.0001 --rungs 200,800,3200",
    ),
    ("vocabulary", "python benchmarks/vocabulary.py"),
    ("onnx_layout", "python benchmarks/onnx_layout.py"),
    ("students", "python benchmarks/students.py  # two 2-hour searches; resumable across sessions"),
    ("main_command", "bash benchmarks/main_command.sh OLD_COMMIT  # the README's command, old against new"),
    ("budget", "python benchmarks/budget.py  # a 20-minute search of a teacher no cache has seen"),
    ("timing_noise", "python benchmarks/timing_noise.py"),
    ("rung0_ranking", "python benchmarks/rung0_ranking.py  # about 100 minutes; resumable"),
)
INTRO = """# Benchmarks

Ratios measured side by side in one run on one machine. Each script prints its table and writes `<name>.md` and
`<name>.csv` here; this page is rebuilt from those files by `python benchmarks/summary.py`.

Install as the README does (`pip install torch==2.13.0 && pip install -c constraints.txt -e .`; the Olive peer also
needs `pip install -e '.[peer]'`), then run, each in under 60 minutes on 2 CPU cores (students.py: about 4 hours):

{commands}

`alternatives.py` and `trial_cost.py` share one run of the README's main search (`autocompress search --budget 6
--seed 0`, kept in ~/.cache/autocompress/bench-search/; delete it to run the search again). Earlier benchmarks of the
runtimes, measurement fidelity and parallel measurement write JSON to results/ (see the project README).
"""


def main() -> None:
    commands = "\n".join(f"    {command}" for _, command in SECTIONS)
    parts = [INTRO.format(commands=commands)]
    for name, _ in SECTIONS:
        path = RESULTS / f"{name}.md"
        if not path.exists():
            parts.append(f"## {name}\n\nNot run yet: `{dict(SECTIONS)[name]}`.\n")
            continue
        text = path.read_text()
        parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()))
    (RESULTS / "README.md").write_text("\n\n".join(parts) + "\n")
    print(f"wrote {RESULTS / 'README.md'}")


if __name__ == "__main__":
    main()
