"""Command line: parse arguments, call the library, and map errors to exit codes (the only place that does).

Exit codes: 0 success, 2 bad input (one line: the problem and the fix), 3 no search candidate met the constraints,
1 a run that could not go on (one line: the reason and where to look), 130 interrupted. Nothing ends in a traceback on
the console: an internal error is one line naming the file that holds its traceback (AUTOCOMPRESS_DEBUG=1 shows it).
With no command, `autocompress` runs `search` on the embedded default.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import traceback
from typing import NoReturn

from autocompress.cli.models import add_commands as add_model_commands
from autocompress.cli.search import add_commands as add_search_commands
from autocompress.errors import RunFailed, UserInputError

# Shared cores: busy-waiting OpenMP threads starve each other (design notes: 5–15× slower), so wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line naming the option, with where to read more (not argparse's whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"autocompress: error: {message}: see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="autocompress", description="Compression search for translation models.")
    parser.add_argument("--version", action="version", version=f"autocompress {_version()}")
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
    except RunFailed as err:
        print(f"autocompress: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autocompress: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            return _internal_error(err)
        where = f" writing {err.filename}" if err.filename else ""
        fix = "free some space" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "give a writable place"
        print(f"autocompress: {err.strerror}{where}: {fix}, then run the command again", file=sys.stderr)
        return 1
    except Exception as err:
        return _internal_error(err)


def _internal_error(err: BaseException) -> int:
    """One line on the console; the traceback in a file, for the bug report."""
    if os.environ.get("AUTOCOMPRESS_DEBUG"):
        raise err
    with tempfile.NamedTemporaryFile("w", prefix="autocompress-error-", suffix=".log", delete=False) as log:
        traceback.print_exception(err, file=log)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    print(f"autocompress: internal error: {type(err).__name__}: {first} (traceback in {log.name})", file=sys.stderr)
    return 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autocompress")
    except PackageNotFoundError:
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
