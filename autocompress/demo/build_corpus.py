"""Write the demo corpus as package data: split by book, xz-compressed TSV, manifest of counts and hashes.

Run `python -m autocompress.demo.build_corpus` after `apt-get install sword-text-web sword-text-sparv`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
from pathlib import Path

from autocompress.demo.bible import (
    DEBIAN_PACKAGES,
    DEV_BOOKS,
    SOURCE_MODULE,
    SWORD_PATH,
    TARGET_MODULE,
    TEST_BOOKS,
    VersePair,
    read_aligned_verses,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "corpus"
SPLITS = ("train", "dev", "test")


def split_of(book: str) -> str:
    if book in DEV_BOOKS:
        return "dev"
    if book in TEST_BOOKS:
        return "test"
    return "train"


def to_tsv(pairs: list[VersePair]) -> str:
    """One verse a line: reference<TAB>English<TAB>Spanish (the reference keeps provenance checkable)."""
    return "".join(f"{p.book} {p.chapter}:{p.verse}\t{p.source}\t{p.target}\n" for p in pairs)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_splits(sword_path: Path = SWORD_PATH) -> dict[str, str]:
    """The three splits as TSV text; deterministic for a given pair of module versions."""
    by_split: dict[str, list[VersePair]] = {name: [] for name in SPLITS}
    for pair in read_aligned_verses(sword_path):
        by_split[split_of(pair.book)].append(pair)
    return {name: to_tsv(pairs) for name, pairs in by_split.items()}


def write_corpus(out: Path, texts: dict[str, str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "source": {"language": "en", "module": SOURCE_MODULE, "text": "World English Bible (2020 stable text)"},
        "target": {"language": "es", "module": TARGET_MODULE, "text": "Reina-Valera 1909"},
        "debian_packages": list(DEBIAN_PACKAGES),
        "licence": "Public domain (both texts; see PROVENANCE.md)",
        "format": "xz-compressed TSV: reference<TAB>source<TAB>target; sha256 is of the uncompressed text",
        "books": {"dev": list(DEV_BOOKS), "test": list(TEST_BOOKS)},
        "splits": {},
    }
    for name, text in texts.items():
        # preset and check pinned so the compressed bytes are reproducible too, though only the text hash is checked
        (out / f"{name}.tsv.xz").write_bytes(lzma.compress(text.encode("utf-8"), preset=9, check=lzma.CHECK_CRC64))
        manifest["splits"][name] = {"pairs": text.count("\n"), "sha256": sha256(text)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sword-path", type=Path, default=SWORD_PATH)
    args = parser.parse_args()
    manifest = write_corpus(args.out, build_splits(args.sword_path))
    print(json.dumps(manifest["splits"], indent=2))


if __name__ == "__main__":
    main()
