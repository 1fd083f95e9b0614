"""What a person watching the search sees: a bar (done, running, failed, Pareto size, best values) and a line per
finished trial. Without a terminal (CI logs) only the lines are written."""

from __future__ import annotations

import sys
from typing import Any

import optuna
from optuna.trial import TrialState

from autocompress.engine.study import is_measured
from autocompress.evaluate.objectives import Measure


class Progress:
    def __init__(self, total: int | None, objectives: tuple[Measure, ...], quiet: bool = False) -> None:
        from tqdm import tqdm

        self.objectives, self.quiet = objectives, quiet
        self.bar: Any = None
        if sys.stderr.isatty() and not quiet:
            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def update(self, study: optuna.Study, running: int) -> None:
        if self.bar is None:
            return
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if is_measured(t)]
        failed = sum(t.state == TrialState.FAIL for t in trials)
        self.bar.n = len(done)
        postfix = {"running": running, "failed": failed, "pareto": len(study.best_trials) if done else 0}
        for position, objective in enumerate(self.objectives[:2] if done else ()):
            pick = max if objective.higher_is_better else min
            postfix[f"best {objective.label}"] = round(pick(t.values[position] for t in done), 2)
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
