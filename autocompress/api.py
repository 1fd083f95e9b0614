"""The search as one call: settings → study → trials on Ray → outputs → the selected model exported.

`autocompress.search(...)` (notebooks, pipelines) and `autocompress search` (the CLI) both end here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from autocompress.engine.budget import parse_budget
from autocompress.engine.config import SearchConfig, resolve_out
from autocompress.engine.driver import Driver
from autocompress.engine.executor import check_address
from autocompress.engine.model_info import check_space, model_info
from autocompress.engine.plan import Plan
from autocompress.engine.progress import Progress
from autocompress.engine.resources import check_local
from autocompress.engine.select import RULES
from autocompress.engine.settings import search_settings
from autocompress.engine.study import make_sampler, open_study, storage_url
from autocompress.engine.view import StudyView
from autocompress.errors import RunFailed, UserInputError
from autocompress.evaluate.objectives import parse_objectives
from autocompress.inputs import check_output_dir, check_study_file, check_weights, finite, integer
from autocompress.space import SearchSpace, load_space
from autocompress.target import TargetSpec

EXIT_EXPORTED, EXIT_NO_CANDIDATE = 0, 3


@dataclass
class SearchResult:
    view: StudyView  # the study, computed once: baseline, measured, feasible, front, selected
    out: Path
    exported: Path | None
    outputs: dict[str, str]

    @property
    def study(self) -> optuna.Study:
        return self.view.study

    @property
    def baseline(self) -> dict[str, Any]:
        return self.view.baseline

    @property
    def selected(self) -> FrozenTrial | None:
        return self.view.selected

    @property
    def rule(self) -> str:
        return self.view.rule

    @property
    def exit_code(self) -> int:
        return EXIT_EXPORTED if self.exported is not None else EXIT_NO_CANDIDATE

    def summary(self) -> dict[str, Any]:
        """What `--json` prints."""
        from autocompress.engine.view import comparison

        view = self.view
        trials = view.study.get_trials(deepcopy=False)
        selected = None
        if view.selected is not None:
            values = view.selected.user_attrs["values"]
            selected = {
                "trial": view.selected.number,
                "recipe_id": view.selected.user_attrs["recipe_id"],
                "values": values,
                "comparison": comparison(view, view.selected),
            }
        return {
            "study": view.name,
            "out": str(self.out),
            "exit_code": self.exit_code,
            "selection": view.rule,
            "objectives": [{"key": m.key, "label": m.title, "direction": m.direction} for m in view.objectives],
            "teacher": view.baseline.get("values"),
            "selected": selected,
            "exported": str(self.exported) if self.exported else None,
            "trials": {
                "measured": len(view.measured),
                "total": len(trials),
                "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
                "pareto": len(view.front),
            },
            "outputs": self.outputs,
        }


def resolve_target(space: SearchSpace, overrides: dict[str, Any]) -> TargetSpec:
    """The space's target settings, then the caller's (command line) on top."""
    return TargetSpec.from_dict({**space.target, **{k: v for k, v in overrides.items() if v is not None}})


def configure(
    model: str = "demo",
    budget: str | list[str] = "20",
    space: str | Path | None = None,
    target: dict[str, Any] | None = None,
    objectives: str | tuple[str, ...] = "bleu,latency,memory",
    **options: Any,
) -> SearchConfig:
    """SearchConfig from plain values, every one checked (a bad one raises UserInputError naming the fix)."""
    overrides = dict(target or {})
    device = overrides.get("device") or "cpu"
    loaded_space = load_space(space if space is not None else ("cuda" if device == "cuda" else "cpu"))
    names = parse_objectives(objectives if isinstance(objectives, str) else ",".join(objectives))
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserInputError(f"search has no option {unknown[0]!r}: options are {', '.join(sorted(known))}")
    if options.get("select", "fastest") not in RULES:
        raise UserInputError(f"--select {options['select']!r} is unknown: choose from {', '.join(RULES)}")
    for name in ("workers", "dev_sentences"):
        if options.get(name) is not None:
            integer(options[name], f"--{name.replace('_', '-')}")
    for name in ("cpus_per_trial", "trial_timeout"):
        if options.get(name) is not None and not finite(options[name], f"--{name.replace('_', '-')}") > 0:
            raise UserInputError(f"--{name.replace('_', '-')} {options[name]} must be positive")
    for name in ("gpus_per_trial", "max_bleu_drop"):
        if options.get(name) is not None:
            finite(options[name], f"--{name.replace('_', '-')}")
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UserInputError(f"--seed {seed} must be a whole number from 0 to {2**32 - 1}")
    if "out" in options:
        options["out"] = Path(options["out"])
    return SearchConfig(
        model=model,
        space=loaded_space,
        target=resolve_target(loaded_space, overrides),
        budget=parse_budget(budget),
        objectives=names,
        **options,
    )


def _checked(config: SearchConfig) -> tuple[SearchSpace, Any, Any]:
    """Every input checked before anything is written or started: the output place, the model with its weights,
    the space against the model, the data, the machine's resources, the cluster's address, the study file.
    (space, the teacher's ModelInfo, its Task)."""
    from autocompress.data import load_corpus
    from autocompress.model.load import model_task, resolve_model_dir

    check_output_dir(config.out.resolve(), "--out")
    if config.storage is None:
        check_study_file(config.out.resolve() / "study.db")
    check_weights(resolve_model_dir(config.model))
    space = config.space or load_space("cuda" if config.target.device == "cuda" else "cpu")
    info = model_info(config.model)
    task = model_task(config.model, config.task_options())
    check_space(space, info, config.target.device)
    for spec in (config.dev, config.train):
        load_corpus(spec)  # unreadable data fails now, not in every trial
    check_local(config)
    if config.address:
        check_address(config.address)
    make_sampler(config.sampler, config.seed)
    return space, info, task


def plan_search(config: SearchConfig) -> Plan:
    """The plan `search` would make with these settings, its units timed here (`autocompress plan`); nothing is
    kept: the teacher's export it times goes to a temporary directory."""
    import tempfile

    space, info, task = _checked(config)
    with tempfile.TemporaryDirectory(prefix="autocompress-plan-") as tmp:
        study = optuna.create_study(directions=[m.direction for m in config.measures()])
        progress = Progress(None, config.measures(), quiet=True)
        scratch = dataclasses.replace(config, out=Path(tmp))
        return Driver(scratch, space, info, study, progress, task).plan_only()


def run_search(config: SearchConfig, quiet: bool = False) -> SearchResult:
    from autocompress.model.load import resolve_model_dir

    space, info, task = _checked(config)
    out = resolve_out(config)  # created only once the settings are known to be good
    settings = search_settings(config, space, task, resolve_model_dir(config.model))
    study = open_study(
        config.study_name,
        storage_url(out, config.storage),
        config.measures(),
        make_sampler(config.sampler, config.seed),
        settings,
    )
    progress = Progress(config.budget.trials, config.measures(), quiet)
    progress.log(
        f"study {study.study_name} in {out}: budget {config.budget.describe()}, {config.workers} worker(s), "
        f"space {space.name}, sampler {config.sampler}, target {config.target.device} "
        f"({config.target.threads} thread(s))" + (f", task {task.describe()}" if task.to_dict() else "")
    )
    driver = Driver(dataclasses.replace(config, out=out), space, info, study, progress, task)
    try:
        driver.run()
    except RunFailed:
        # what was measured stays readable: the tables and report say where it stopped
        finish(study, out, storage=config.storage)
        raise
    progress.log("writing the tables, plots and report")
    written = time.monotonic()
    result = finish(study, out, storage=config.storage)
    actuals = {**study.user_attrs.get("actuals", {})}
    actuals["outputs"] = round(actuals.get("outputs", 0.0) + time.monotonic() - written, 1)
    actuals["total"] = round(time.monotonic() - driver.started, 1)  # everything the user waited for, this run
    study.set_user_attr("actuals", actuals)
    budget = config.budget.seconds
    progress.log(f"done in {actuals['total'] / 60:.1f} min" + (f" of a {budget / 60:g}-min budget" if budget else ""))
    return result


def finish(study: optuna.Study, out: Path, rule: str | None = None, storage: str | None = None) -> SearchResult:
    """Tables, plots and report from one view of the study; the selected trial exported to out/best. `rule`
    overrides the selection the search was run with (its recorded settings). Written into a staging directory and
    moved into place file by file: a full disk or a second search finishing at the same moment never leaves a
    half-written table."""
    import os
    import shutil

    from autocompress.engine.study import alive
    from autocompress.engine.view import study_view
    from autocompress.engine.worker import FAULTS_ENV
    from autocompress.report.bundle import export_trial
    from autocompress.report.html import write_html
    from autocompress.report.plots import write_plots
    from autocompress.report.tables import write_tables

    view = study_view(study, rule)
    for stale in out.glob(".outputs-*"):  # left by a process killed while writing
        if not alive(int(stale.name.rsplit("-", 1)[1])):
            shutil.rmtree(stale, ignore_errors=True)
    staging = out / f".outputs-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write_tables(view, staging)
        plots = write_plots(view, staging)
        write_html(view, staging, plots, out)
        exported = None
        if view.selected is not None:
            exported = export_trial(view, view.selected, out / "best", view.rule, storage or storage_url(out, None))
        if "outputs:exit" in os.environ.get(FAULTS_ENV, ""):  # the fault tests: killed while writing the outputs
            os._exit(17)
        for file in sorted(staging.iterdir()):
            os.replace(file, out / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    outputs = {
        "trials": str(out / "trials.csv"),
        "pareto": str(out / "pareto.csv"),
        "pareto_json": str(out / "pareto.json"),
        "report": str(out / "report.html"),
        **{name: str(out / file) for name, file in plots.items() if file.endswith(".png")},
    }
    return SearchResult(view, out, exported, outputs)


def search(model: str = "demo", budget: str | list[str] = "20", **options: Any) -> SearchResult:
    """Run a search from Python; the same settings as `autocompress search` (see `autocompress search --help`).

    >>> result = autocompress.search("demo", budget="8", workers=2, out="results/demo")
    >>> result.selected.user_attrs["values"], result.exported
    """
    quiet = options.pop("quiet", False)
    return run_search(configure(model, budget, **options), quiet=quiet or not sys.stderr)
