"""Parallel corpora: the bundled demo splits, a TSV file, or two plain-text files; validated with clear errors."""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from pathlib import Path

from autocompress.errors import UserInputError

DEMO_CORPUS = Path(__file__).resolve().parent / "demo" / "corpus"
DEMO_SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class ParallelCorpus:
    name: str
    sources: tuple[str, ...]
    references: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sources)

    def with_source_prefix(self, prefix: str) -> ParallelCorpus:
        """The sources as the model reads them (a T5 task prefix, a >>es<< target token); references unchanged."""
        if not prefix:
            return self
        return ParallelCorpus(self.name, tuple(prefix + s for s in self.sources), self.references)

    def head(self, n: int | None) -> ParallelCorpus:
        if n is None or n >= len(self):
            return self
        return ParallelCorpus(f"{self.name}[:{n}]", self.sources[:n], self.references[:n])


def load_demo(split: str) -> ParallelCorpus:
    if split not in DEMO_SPLITS:
        raise UserInputError(f"unknown demo split {split!r}: use one of {', '.join(DEMO_SPLITS)}")
    text = lzma.decompress((DEMO_CORPUS / f"{split}.tsv.xz").read_bytes()).decode("utf-8")
    rows = [line.split("\t") for line in text.splitlines()]
    return ParallelCorpus(f"demo:{split}", tuple(r[1] for r in rows), tuple(r[2] for r in rows))


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.exists():
        raise UserInputError(f"{what} {path} does not exist: check the path")
    if path.is_dir():
        raise UserInputError(f"{what} {path} is a directory: give a text file")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserInputError(f"{what} {path} is UTF-16: re-save it as UTF-8 (iconv -f UTF-16 -t UTF-8)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise UserInputError(f"{what} {path} starts with a byte-order mark: re-save it as UTF-8 without BOM")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserInputError(f"{what} {path} is not UTF-8 (byte {err.start}): re-save it as UTF-8") from None
    if "\r" in text:
        raise UserInputError(f"{what} {path} has CRLF or CR line endings: convert it with dos2unix")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise UserInputError(f"{what} {path} is empty: give one sentence a line")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise UserInputError(f"{what} {path} line {number} is empty: remove or fill it (one sentence a line)")
    return lines


def load_tsv(path: Path) -> ParallelCorpus:
    """Exactly source<TAB>reference per line: a third column is an error, so a mistaken file is not read silently."""
    sources, references = [], []
    for number, line in enumerate(_read_lines(path, "TSV file"), start=1):
        parts = line.split("\t")
        if len(parts) != 2:
            found = "no tab" if len(parts) == 1 else f"{len(parts) - 1} tabs"
            raise UserInputError(f"TSV file {path} line {number} has {found}: each line must be source<TAB>reference")
        if not parts[0].strip() or not parts[1].strip():
            raise UserInputError(f"TSV file {path} line {number} has an empty side: fill or remove it")
        sources.append(parts[0])
        references.append(parts[1])
    return ParallelCorpus(str(path), tuple(sources), tuple(references))


def load_pair(source_path: Path, reference_path: Path) -> ParallelCorpus:
    sources = _read_lines(source_path, "source file")
    references = _read_lines(reference_path, "reference file")
    if len(sources) != len(references):
        raise UserInputError(
            f"{source_path} has {len(sources)} lines but {reference_path} has {len(references)}: "
            "they must be line-aligned, one sentence a line"
        )
    return ParallelCorpus(f"{source_path}+{reference_path}", tuple(sources), tuple(references))


def load_corpus(spec: str) -> ParallelCorpus:
    """'demo:<split>' or a TSV file (source, reference)."""
    if spec.startswith("demo:"):
        return load_demo(spec.removeprefix("demo:"))
    return load_tsv(Path(spec))
