"""The commands that use one model: evaluate, translate, train-teacher; and the task options they share with search."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.errors import UserInputError

if TYPE_CHECKING:
    from autocompress.data import ParallelCorpus
    from autocompress.model.translate import Translator


def task_options(args: argparse.Namespace) -> dict[str, str]:
    """--source-prefix, --source-lang, --target-lang as given (None: the model's own; autocompress.task)."""
    given = {name: getattr(args, name, None) for name in ("source_prefix", "source_lang", "target_lang")}
    return {k: v for k, v in given.items() if v is not None}


def add_task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source-prefix", help="text put before every source (T5: 'translate English to Spanish: ')")
    p.add_argument("--source-lang", help="source language code (MBart-50 en_XX, M2M100 en, NLLB eng_Latn)")
    p.add_argument("--target-lang", help="target language code (default: the model's or its tokenizer's)")


def open_translator(spec: str, task: dict[str, Any] | None = None, threads: int | None = None) -> Translator:
    """'demo', a save_pretrained directory, or an exported artifact directory (a search's best/), each run in its own
    runtime. `task` holds the options given (source_prefix, source_lang, target_lang); an artifact keeps the task it
    was built for, and an option that would change it is refused."""
    from autocompress.model.load import is_artifact, load_model
    from autocompress.model.translate import ModelTranslator

    given = {k: v for k, v in (task or {}).items() if v is not None}
    if is_artifact(spec):
        from autocompress.manifest import Manifest
        from autocompress.runtime import open_artifact

        # Not given: the threads it was measured at. CTranslate2's own default (every core) decoded 8-14x slower
        # than one thread on 2 shared cores (passive waits), and is not what the search chose it for.
        threads = threads or Manifest.read(Path(spec)).measured_threads()
        runtime = open_artifact(Path(spec), threads=threads)
        built_for = runtime.task.to_dict()
        differing = sorted(k for k, v in given.items() if built_for.get(k) != v)
        if differing:
            raise UserInputError(
                f"artifact {spec} was built for {runtime.task.describe()}; --{differing[0].replace('_', '-')} cannot "
                "change it: compress the model again with that option"
            )
        return runtime
    loaded = load_model(spec, task=given)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return ModelTranslator(loaded.model, loaded.tokenizer, loaded.task)


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
    from autocompress.evaluate.bleu import score_translations

    corpus = _corpus(args).head(args.limit)
    translator = open_translator(args.model, task_options(args), args.threads)
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
    translator = open_translator(args.model, task_options(args), args.threads)
    lines = read_stdin_lines()
    hyps = translator.translate(lines, batch_size=args.batch_size, max_length=args.max_length, beam=args.beam)
    sys.stdout.writelines(h + "\n" for h in hyps)
    return 0


def read_stdin_lines() -> list[str]:
    """stdin as UTF-8 lines; Windows line ends (CRLF) end a line like LF does."""
    raw = getattr(sys.stdin, "buffer", None)  # a text stream without bytes (an embedding program's) is read as is
    data = raw.read() if raw is not None else sys.stdin.read().encode("utf-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserInputError(f"stdin line {line} is not UTF-8 (byte {err.start}): convert the input to UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines  # a last line end ends the last line, it starts no new one


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from autocompress.demo.train_teacher import TeacherSettings, train_teacher

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
        from autocompress.demo.package import install_demo_teacher

        print(f"installed the demo teacher in {install_demo_teacher(final, workdir)}")
    return 0


def add_commands(sub: Any) -> None:
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
        p.add_argument(
            "--threads", type=int, help="CPU threads (default: an artifact's, as its latency was measured; else all)"
        )

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
