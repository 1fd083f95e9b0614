"""A shared EN/ES sentencepiece vocabulary wrapped as a MarianTokenizer (the layout OPUS-MT models use)."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import MarianTokenizer

# Marian convention: </s> is 0, <unk> 1, and <pad> is last-but-not-in-spm; we put pad in the spm model as id 2.
SPECIAL_IDS = {"</s>": 0, "<unk>": 1, "<pad>": 2}


def train_marian_tokenizer(texts: Sequence[str], out_dir: Path, vocab_size: int = 8000) -> MarianTokenizer:
    """Train one unigram model on both languages and save a MarianTokenizer with it as source and target spm."""
    import sentencepiece as spm
    from transformers import MarianTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "spm"),
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            eos_id=SPECIAL_IDS["</s>"],
            unk_id=SPECIAL_IDS["<unk>"],
            pad_id=SPECIAL_IDS["<pad>"],
            bos_id=-1,
            num_threads=1,  # more threads make the vocabulary depend on scheduling
            minloglevel=2,
        )
        processor = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "spm.model"))
        vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
        for name in ("source.spm", "target.spm"):
            shutil.copy(Path(tmp) / "spm.model", out_dir / name)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        tokenizer = MarianTokenizer(
            source_spm=str(out_dir / "source.spm"),
            target_spm=str(out_dir / "target.spm"),
            vocab=str(out_dir / "vocab.json"),
            source_lang="en",
            target_lang="es",
        )
    tokenizer.save_pretrained(out_dir)
    return tokenizer
