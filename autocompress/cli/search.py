"""The search commands: search, pareto, export, report. Exit codes: 0 model exported (or command done), 3 no candidate
met the constraints, 2 bad input, 1 internal error."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from autocompress.cli.models import add_task_options
from autocompress.errors import UserInputError


def add_commands(sub: Any) -> None:
    se = sub.add_parser("search", help="search compression recipes; write the Pareto front and export the best model")
    _search_args(se)
    pl = sub.add_parser("plan", help="time a few units on this machine and print the plan `search` would follow")
    _search_args(pl)
    pl.set_defaults(func=cmd_plan)
    se.set_defaults(func=cmd_search)

    pr = sub.add_parser("prepare", help="build what trials derive from the teacher (importance, its translations)")
    pr.add_argument("--model", default="demo", help="teacher: a save_pretrained directory, or 'demo' (default)")
    pr.add_argument("--train", default="demo:train", help="training data: demo:train or a source<TAB>reference file")
    pr.add_argument("--space", help="what this search space needs (default: the CPU space)")
    pr.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    pr.add_argument("--json", action="store_true", help="JSON on stdout")
    add_task_options(pr)
    pr.set_defaults(func=cmd_prepare)

    pa = sub.add_parser("pareto", help="print a study's Pareto front")
    _study_args(pa)
    pa.set_defaults(func=cmd_pareto)
    ex = sub.add_parser("export", help="export one trial's model (recipe, metrics, model card)")
    _study_args(ex)
    ex.add_argument("--trial", type=int, required=True, help="the trial number (see `autocompress pareto`)")
    ex.add_argument("--to", type=Path, help="destination (default <study dir>/trial-N)")
    ex.add_argument("--force", action="store_true", help="replace --to when it is not empty")
    ex.set_defaults(func=cmd_export)
    re = sub.add_parser("report", help="rebuild a study's tables, plots and report.html")
    _study_args(re)
    re.add_argument("--select", help="another selection rule for best/ (default: the one the search was run with)")
    re.set_defaults(func=cmd_report)


def _search_args(p: argparse.ArgumentParser) -> None:
    """The search's options: `search` and `plan` take the same."""
    p.add_argument("--model", default="demo", help="teacher: a save_pretrained directory, or 'demo' (default)")
    p.add_argument("--train", default="demo:train", help="training data: demo:train or a source<TAB>reference file")
    p.add_argument("--dev", default="demo:dev", help="dev set scored for BLEU: demo:dev or a TSV file")
    p.add_argument("--dev-sentences", type=int, help="score only the first N dev sentences")
    add_task_options(p)
    p.add_argument(
        "--budget", action="append", help="completed trials (20), wall time (90m, 2h) or both (20,2h); default 20"
    )
    p.add_argument("--space", help="search space: cpu, cuda, quick, or a YAML file (default: the target's device)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="target device (default: the space's, else cpu)")
    p.add_argument("--threads", type=int, help="target CPU threads the latency is measured with")
    p.add_argument("--target", type=Path, help="target settings from a YAML file (device, threads, batch_sizes…)")
    p.add_argument("--objectives", default="bleu,latency,memory", help="comma-separated; also chrf, size, …")
    p.add_argument("--sampler", default="tpe", help="tpe (default), nsga2, gp or random")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler and every recipe: repeatable runs")
    p.add_argument("--out", type=Path, help="output directory (default results/<study>)")
    p.add_argument("--study", help="study name (default: the output directory's name, 'search')")
    p.add_argument("--storage", help="an Optuna RDB URL (default: a SQLite file in the output directory)")
    p.add_argument("--workers", type=int, default=1, help="trials run at the same time (default 1)")
    p.add_argument("--cpus-per-trial", type=float, help="Ray CPUs a trial takes (default: cores / workers)")
    p.add_argument("--gpus-per-trial", type=float, help="Ray GPUs a trial takes, fractions allowed (default 1 on cuda)")
    p.add_argument("--address", help="join a running Ray cluster (host:port) instead of starting a local Ray")
    p.add_argument("--trial-timeout", type=float, help="seconds after which a trial is stopped and marked failed")
    p.add_argument("--max-bleu-drop", type=float, default=1.0, help="BLEU below the teacher allowed (default 1.0)")
    p.add_argument("--no-constraint", action="store_true", help="no BLEU constraint on the selection")
    p.add_argument(
        "--select",
        default="fastest",
        help="fastest (default; p50s within 3 %% of the fastest tie, the smaller wins), smallest, knee or best-bleu",
    )
    p.add_argument("--json", action="store_true", help="a JSON summary on stdout (the human table goes to stderr)")


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_dir", type=Path, help="the study's output directory (results/<study>)")
    p.add_argument("--storage", help="the Optuna RDB URL, when the study is not in the directory's study.db")
    p.add_argument("--study", help="the study name (default: the directory's name)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")


def _config(args: argparse.Namespace) -> Any:
    from autocompress.api import configure

    target: dict[str, Any] = {}
    if args.target:
        from autocompress.target import TargetSpec

        target = TargetSpec.from_yaml(args.target).to_dict()
    target |= {k: v for k, v in (("device", args.device), ("threads", args.threads)) if v is not None}
    study = args.study or (args.out.resolve().name if args.out else "search")
    return configure(
        args.model,
        args.budget or ["20"],
        space=args.space,
        target=target,
        objectives=args.objectives,
        train=args.train,
        dev=args.dev,
        dev_sentences=args.dev_sentences,
        sampler=args.sampler,
        seed=args.seed,
        out=args.out or Path("results") / study,
        study=study,
        storage=args.storage,
        workers=args.workers,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        address=args.address,
        trial_timeout=args.trial_timeout,
        max_bleu_drop=None if args.no_constraint else args.max_bleu_drop,
        select=args.select,
        source_prefix=args.source_prefix,
        source_lang=args.source_lang,
        target_lang=args.target_lang,
    )


def cmd_plan(args: argparse.Namespace) -> int:
    from autocompress.api import plan_search

    plan = plan_search(_config(args))
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print("\n".join(plan.lines()))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from autocompress.api import run_search

    config = _config(args)
    result = run_search(config)
    summary = result.summary()
    human = sys.stderr if args.json else sys.stdout
    print(_final_table(summary), file=human)
    if args.json:
        print(json.dumps(summary, indent=2))
    return result.exit_code


def _final_table(summary: dict[str, Any]) -> str:
    lines = [""]
    selected = summary["selected"]
    trials = summary["trials"]
    lines.append(
        f"{trials['measured']} trials measured ({trials['failed']} failed), {trials['pareto']} on the Pareto front"
    )
    if selected is None:
        lines.append(f"no trial met the constraints: nothing exported (exit 3); see {summary['outputs']['report']}")
        return "\n".join(lines)
    lines.append(f"selected trial {selected['trial']} ({summary['selection']}), exported to {summary['exported']}")
    width = max(len(row["measure"]) for row in selected["comparison"])
    lines.append(f"{'':{width}} {'teacher':>10} {'selected':>10} {'change':>12}")
    for row in selected["comparison"]:
        lines.append(f"{row['measure']:{width}} {row['teacher']:>10.4g} {row['model']:>10.4g} {row['change']:>12}")
    if any(row.get("retimed") for row in selected["comparison"]):
        from autocompress.engine.view import RETIMED_NOTE

        lines.append(RETIMED_NOTE)
    lines.append(f"report: {summary['outputs']['report']}  (trials.csv, pareto.csv, pareto.json, plots beside it)")
    return "\n".join(lines)


def _open(args: argparse.Namespace) -> Any:
    import optuna

    from autocompress.engine.study import storage_url
    from autocompress.inputs import check_study_file

    directory = args.study_dir.resolve()
    if args.storage is None:  # read commands never create or change a study file
        if not directory.is_dir():
            raise UserInputError(f"{directory} is not a directory: give a study's output directory (results/<study>)")
        if not (directory / "study.db").exists():
            raise UserInputError(f"{directory} holds no study.db: give a study's output directory, or --storage URL")
        check_study_file(directory / "study.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=args.study or directory.name, storage=storage_url(directory, args.storage))
    except KeyError:
        names = optuna.get_all_study_names(storage_url(directory, args.storage))
        raise UserInputError(f"no study {args.study or directory.name!r} there: it holds {', '.join(names)}") from None


def cmd_prepare(args: argparse.Namespace) -> int:
    import os

    import torch

    from autocompress.cache import ArtifactCache
    from autocompress.cli.models import task_options
    from autocompress.data import load_corpus
    from autocompress.engine.model_info import model_info
    from autocompress.model.load import load_model
    from autocompress.space import load_space, teacher_artifacts
    from autocompress.teacher.context import TeacherContext
    from autocompress.teacher.elastic import settings_from_space, uses_elastic
    from autocompress.teacher.prepare import prepare

    space = load_space(args.space or "cpu")
    artifacts = teacher_artifacts(space)
    elastic = settings_from_space(space, model_info(args.model).layers) if uses_elastic(space) else None
    train = load_corpus(args.train)
    loaded = load_model(args.model, task=task_options(args))
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    log = (lambda _m: None) if args.json else functools.partial(print, flush=True)  # a log file follows it
    ctx = TeacherContext(loaded.model, loaded.tokenizer, train, ArtifactCache(), task=loaded.task, log=log)
    built = prepare(ctx, artifacts, elastic)
    if args.json:
        print(json.dumps(built, indent=2))
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from autocompress.engine.view import study_view
    from autocompress.report.tables import front_rows

    view = study_view(_open(args))
    rows = front_rows(view)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    keys = [m.key for m in view.measures]
    print(f"{'trial':>8} " + " ".join(f"{k:>15}" for k in keys) + "  model")
    for r in rows:
        cells = " ".join(f"{r[k]:>15.4g}" if r.get(k) is not None else f"{'':>15}" for k in keys)
        print(f"{r['trial']!s:>8} {cells}  {r.get('model') or ''}")
    print(f"export one: autocompress export {args.study_dir} --trial N --to DIR")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from autocompress.engine.study import storage_url
    from autocompress.engine.view import study_view
    from autocompress.report.bundle import check_export_target, export_trial

    study = _open(args)
    if not 0 <= args.trial < len(study.trials):
        raise UserInputError(f"study has no trial {args.trial}: trials are 0–{len(study.trials) - 1}")
    dest = args.to or args.study_dir / f"trial-{args.trial}"
    check_export_target(dest, args.study_dir, args.force)
    storage = storage_url(args.study_dir.resolve(), args.storage)
    dest = export_trial(study_view(study), study.trials[args.trial], dest, storage=storage)
    print(json.dumps({"exported": str(dest)}) if args.json else f"exported trial {args.trial} to {dest}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the outputs; best/ is the model the search's own --select picks, unless --select is given here."""
    from autocompress.api import finish

    result = finish(_open(args), args.study_dir.resolve(), args.select, args.storage)
    print(json.dumps(result.outputs) if args.json else f"wrote {result.outputs['report']}")
    return 0
