"""The shipped demo corpus is reproduced exactly from the Debian SWORD packages."""

from __future__ import annotations

import hashlib
import json
import lzma

import pytest

from autocompress.demo.bible import SOURCE_MODULE, SWORD_PATH, TARGET_MODULE, clean_osis, decapitalize_drop_caps
from autocompress.demo.build_corpus import DEFAULT_OUT, build_splits, split_of

MANIFEST = json.loads((DEFAULT_OUT / "manifest.json").read_text())


def _modules_installed() -> bool:
    conf = SWORD_PATH / "mods.d"
    return (conf / f"{SOURCE_MODULE}.conf").exists() and (conf / f"{TARGET_MODULE}.conf").exists()


def test_shipped_files_match_manifest() -> None:
    for split, entry in MANIFEST["splits"].items():
        text = lzma.decompress((DEFAULT_OUT / f"{split}.tsv.xz").read_bytes()).decode("utf-8")
        assert hashlib.sha256(text.encode()).hexdigest() == entry["sha256"]
        assert text.count("\n") == entry["pairs"]
    assert MANIFEST["splits"]["dev"]["pairs"] >= 400 and MANIFEST["splits"]["test"]["pairs"] >= 500


def test_splits_share_no_book() -> None:
    books = {}
    for split in MANIFEST["splits"]:
        text = lzma.decompress((DEFAULT_OUT / f"{split}.tsv.xz").read_bytes()).decode("utf-8")
        books[split] = {line.split("\t")[0].rsplit(" ", 1)[0] for line in text.splitlines()}
        assert all(split_of(book) == split for book in books[split])
    assert not books["train"] & books["dev"] and not books["train"] & books["test"] and not books["dev"] & books["test"]


def test_markup_is_stripped_without_gluing_words() -> None:
    raw = (
        '<w lemma="x">God</w><note placement="foot"><reference>1:1 </reference>A note.</note>'
        '<w lemma="y">created</w> <title type="section">Heading</title>the <w>earth</w> .'
    )
    assert clean_osis(raw, keep_canonical_titles=True) == "God created the earth."
    psalm = '<title canonical="true" type="psalm">A Psalm by David.</title> <l level="1"/>Yahweh, hear!'
    assert clean_osis(psalm, keep_canonical_titles=True) == "A Psalm by David. Yahweh, hear!"
    assert decapitalize_drop_caps("EN el principio") == "En el principio"
    assert decapitalize_drop_caps("Y ACONTECIÓ que") == "Y aconteció que"


@pytest.mark.slow
@pytest.mark.skipif(
    not _modules_installed(), reason="Debian packages sword-text-web and sword-text-sparv are not installed (apt-get)"
)
def test_rebuild_from_debian_packages_matches_manifest() -> None:
    pytest.importorskip("pysword", reason="pysword is not installed (pip install -e '.[corpus]')")
    texts = build_splits()
    for split, text in texts.items():
        assert hashlib.sha256(text.encode()).hexdigest() == MANIFEST["splits"][split]["sha256"], split
