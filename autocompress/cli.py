"""Command line: parse arguments, call the library, and map errors to exit codes (the only place that does).

Exit codes: 0 success, 2 bad input (one line: the problem and the fix), 3 no search candidate met the constraints,
1 internal error. With no command, `autocompress` runs `search` on the embedded default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from autocompress.cli_search import add_commands, add_task_options, task_options
from autocompress.errors import UserInputError

if TYPE_CHECKING:
    from autocompress.data import ParallelCorpus

# Shared cores: busy-waiting OpenMP threads starve each other (design notes: 5–15× slower), so wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _corpus(args: argparse.Namespace) -> ParallelCorpus:
    from autocompress import data

    if args.tsv:
        return data.load_tsv(Path(args.tsv))
    if args.source or args.reference:
        if not (args.source and args.reference):
            raise UserInputError("--source and --reference go together: give both files, or --tsv, or --split")
        return data.load_pair(Path(args.source), Path(args.reference))
    return data.load_demo(args.split)


def _name(spec: str) -> str:
    return spec if spec == "demo" else str(Path(spec))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from autocompress.evaluate_bleu import score_translations
    from autocompress.translate import open_translator

    corpus = _corpus(args).head(args.limit)
    translator = open_translator(args.model, task_options(args))
    hyps = translator.translate(
        list(corpus.sources), batch_size=args.batch_size, max_length=args.max_length, beam=args.beam
    )
    bleu, chrf = score_translations(hyps, list(corpus.references))
    result = {
        "model": _name(args.model),
        "data": corpus.name,
        "sentences": len(corpus),
        "beam": args.beam,
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "bleu_signature": bleu.signature,
        "chrf_signature": chrf.signature,
    }
    if args.json:
        print(json.dumps(result))
    else:
        decoding = "greedy" if args.beam == 1 else f"beam {args.beam}"
        print(f"{_name(args.model)} on {corpus.name} ({len(corpus)} sentences, {decoding})")
        print(f"BLEU {bleu.score:.2f}  {bleu.signature}")
        print(f"chrF {chrf.score:.2f}  {chrf.signature}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from autocompress.translate import open_translator

    translator = open_translator(args.model, task_options(args))
    lines = [line.rstrip("\n") for line in sys.stdin]
    hyps = translator.translate(lines, batch_size=args.batch_size, max_length=args.max_length, beam=args.beam)
    sys.stdout.writelines(h + "\n" for h in hyps)
    return 0


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from autocompress.teacher.train import TeacherSettings, train_teacher

    settings = TeacherSettings()
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "train.log", "a", buffering=1) as log_file:

        def log(message: str) -> None:
            print(message, flush=True)
            print(message, file=log_file)

        try:
            final = train_teacher(workdir, settings, log=log)
        except ValueError as err:
            raise UserInputError(str(err)) from None
    if args.install:
        from autocompress.teacher.package import install_demo_teacher

        print(f"installed the demo teacher in {install_demo_teacher(final, workdir)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autocompress", description="Compression search for translation models.")
    sub = parser.add_subparsers(dest="command")
    add_commands(sub)

    def model_and_decoding(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            default="demo",
            help="'demo' (default), a save_pretrained directory, or an exported artifact (a search's best/)",
        )
        add_task_options(p)
        p.add_argument("--beam", type=int, default=1, help="beam size; 1 is greedy (default)")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--max-length", type=int, default=256, help="maximum new tokens per sentence")

    ev = sub.add_parser("evaluate", help="BLEU and chrF (with sacrebleu signatures) of a model on a corpus")
    model_and_decoding(ev)
    ev.add_argument("--split", default="dev", help="demo split: train, dev or test (default dev)")
    ev.add_argument("--tsv", help="a file of source<TAB>reference lines")
    ev.add_argument("--source", help="source sentences, one a line (with --reference)")
    ev.add_argument("--reference", help="reference translations, one a line (with --source)")
    ev.add_argument("--limit", type=int, help="only the first N sentences")
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("translate", help="translate stdin to stdout, one sentence a line")
    model_and_decoding(tr)
    tr.set_defaults(func=cmd_translate)

    tt = sub.add_parser("train-teacher", help="train the demo teacher (resumes from checkpoints in --workdir)")
    tt.add_argument("--workdir", default=str(Path.home() / ".cache" / "autocompress" / "teacher-demo"))
    tt.add_argument("--steps", type=int, help="total training steps (default: the shipped teacher's)")
    tt.add_argument("--install", action="store_true", help="then write it (fp16) into the package as the demo")
    tt.set_defaults(func=cmd_train_teacher)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv or ["search"])
    for name in ("beam", "batch_size", "max_length", "limit", "steps", "threads", "workers", "dev_sentences"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"autocompress: error: --{name.replace('_', '-')} must be at least 1, got {value}", file=sys.stderr)
            return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars on stderr would bury the one-line errors and the results
    try:
        return args.func(args)
    except UserInputError as err:
        print(f"autocompress: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autocompress: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
