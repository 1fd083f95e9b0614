"""Command line: parse arguments, call the library, and map errors to exit codes (the only place that does).

Exit codes: 0 success, 2 bad input (one line: the problem and the fix), 3 no search candidate met the constraints,
1 internal error. With no command, `autocompress` runs `search` on the embedded default.
"""

from __future__ import annotations

import argparse
import os
import sys

from autocompress.cli.models import add_commands as add_model_commands
from autocompress.cli.search import add_commands as add_search_commands
from autocompress.errors import UserInputError

# Shared cores: busy-waiting OpenMP threads starve each other (design notes: 5–15× slower), so wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autocompress", description="Compression search for translation models.")
    sub = parser.add_subparsers(dest="command")
    add_search_commands(sub)
    add_model_commands(sub)
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
