"""Build the demo EN→ES corpus: World English Bible (2020) ↔ Reina-Valera 1909, aligned by verse.

Both texts are public domain and ship as Debian packages (sword-text-web, sword-text-sparv); pysword reads them.
The two modules use different versifications (NRSVA and KJV) and RV1909 also divides some chapters differently,
so alignment is checked per chapter (verse counts, length correlation) and per verse (length ratio).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SWORD_PATH = Path("/usr/share/sword")
SOURCE_MODULE = "engWEB2015eb"
TARGET_MODULE = "spaRV1909eb"
DEBIAN_PACKAGES = ("sword-text-web", "sword-text-sparv")

# Split by book so that no dev or test verse, nor a verse of the same book, is seen in training.
DEV_BOOKS = ("Philippians", "Colossians", "I Thessalonians", "II Thessalonians", "Titus", "Philemon", "Jude")
TEST_BOOKS = ("Ruth", "Esther", "Jonah", "James", "I Peter", "II Peter")

_DROPPED_ELEMENTS = re.compile(r"<(note|title)\b[^>]*?(?<!/)>.*?</\1>", re.DOTALL)
_CANONICAL_TITLE = re.compile(r"<title\b[^>]*canonical=\"true\"[^>]*>(.*?)</title>", re.DOTALL)
# Tags that separate words (line, paragraph and milestone markers); all other tags are inline and removed silently.
_SPACING_TAGS = re.compile(r"</?(l|lg|lb|p|div|milestone|br)\b[^>]*>")
_ANY_TAG = re.compile(r"<[^>]+>")
_SPACE_BEFORE = re.compile(r"\s+([,.;:!?)\]”’»])")
_SPACE_AFTER = re.compile(r"([(\[“‘¿¡«])\s+")
_ALL_CAPS_WORD = re.compile(r"\b([A-ZÁÉÍÓÚÑÜ]{2,})\b")


@dataclass(frozen=True)
class VersePair:
    book: str
    chapter: int
    verse: int
    source: str
    target: str


def clean_osis(raw: str, keep_canonical_titles: bool) -> str:
    """OSIS markup → plain text, without gluing the words on either side of a removed element."""
    text = raw
    if keep_canonical_titles:
        # Psalm superscriptions are part of verse 1 in RV1909; keeping them in WEB keeps the pair aligned.
        text = _CANONICAL_TITLE.sub(lambda m: " " + m.group(1) + " ", text)
    text = _DROPPED_ELEMENTS.sub(" ", text)
    text = _SPACING_TAGS.sub(" ", text)
    text = _ANY_TAG.sub("", text)
    text = html.unescape(text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text)


def decapitalize_drop_caps(text: str) -> str:
    """RV1909 prints the first word of a chapter in capitals ("EN el principio"); write it as a normal word."""
    match = _ALL_CAPS_WORD.search(text)
    if match is None:
        return text
    word = match.group(1)
    starts_sentence = not re.search(r"\w", text[: match.start()])
    fixed = word.capitalize() if starts_sentence else word.lower()
    return text[: match.start()] + fixed + text[match.end() :]


def _chapter_is_aligned(pairs: list[tuple[str, str]]) -> bool:
    """Reject chapters whose verses are shifted: lengths must correlate best at lag 0."""
    if len(pairs) < 6:
        return True
    src = [len(s) for s, _ in pairs]
    tgt = [len(t) for _, t in pairs]

    def corr(a: list[int], b: list[int]) -> float:
        n = len(a)
        ma, mb = sum(a) / n, sum(b) / n
        cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
        va = sum((x - ma) ** 2 for x in a) ** 0.5
        vb = sum((y - mb) ** 2 for y in b) ** 0.5
        return cov / (va * vb) if va and vb else 0.0

    at_zero = corr(src, tgt)
    shifted = max(corr(src[1:], tgt[:-1]), corr(src[:-1], tgt[1:]))
    return at_zero >= 0.5 and at_zero > shifted


def _verse_is_aligned(source: str, target: str) -> bool:
    if len(source) < 3 or len(target) < 3:
        return False
    ratio = len(target) / len(source)
    return 0.6 <= ratio <= 1.9


def read_aligned_verses(sword_path: Path = SWORD_PATH) -> Iterator[VersePair]:
    """Yield cleaned, aligned verse pairs of the 66 books both modules share, in canonical order."""
    from pysword.modules import SwordModules

    modules = SwordModules(str(sword_path))
    found = modules.parse_modules()
    missing = [name for name in (SOURCE_MODULE, TARGET_MODULE) if name not in found]
    if missing:
        raise FileNotFoundError(
            f"SWORD modules {missing} not found under {sword_path}: apt-get install {' '.join(DEBIAN_PACKAGES)}"
        )
    src_bible = modules.get_bible_from_module(SOURCE_MODULE)
    tgt_bible = modules.get_bible_from_module(TARGET_MODULE)
    src_books = {b.name: b for t in src_bible.get_structure().get_books().values() for b in t}
    for testament in tgt_bible.get_structure().get_books().values():
        for tgt_book in testament:
            src_book = src_books.get(tgt_book.name)
            if src_book is None:
                continue
            yield from _read_book(src_bible, tgt_bible, src_book, tgt_book)


def _read_book(src_bible, tgt_bible, src_book, tgt_book) -> Iterator[VersePair]:  # noqa: ANN001 (pysword types)
    name = tgt_book.name
    for chapter in range(1, min(src_book.num_chapters, tgt_book.num_chapters) + 1):
        n_src = src_book.chapter_lengths[chapter - 1]
        n_tgt = tgt_book.chapter_lengths[chapter - 1]
        if n_src != n_tgt:  # a different verse division: this chapter cannot be aligned by number
            continue
        pairs: list[tuple[str, str]] = []
        for verse in range(1, n_src + 1):
            src_raw = src_bible.get(books=[name], chapters=[chapter], verses=[verse], clean=False)
            tgt_raw = tgt_bible.get(books=[name], chapters=[chapter], verses=[verse], clean=False)
            source = clean_osis(src_raw, keep_canonical_titles=True)
            target = clean_osis(tgt_raw, keep_canonical_titles=True)
            if verse == 1 or (verse == 2 and not pairs):
                target = decapitalize_drop_caps(target)
            pairs.append((source, target))
        if not _chapter_is_aligned(pairs):
            continue
        for verse, (source, target) in enumerate(pairs, start=1):
            if _verse_is_aligned(source, target):
                yield VersePair(name, chapter, verse, source, target)
