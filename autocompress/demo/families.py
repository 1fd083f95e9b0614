"""Small models of every family we compress, built the way users build theirs: each with its own SentencePiece
tokenizer trained on the corpus, the family's conventions (language tokens, a task prefix, separate vocabularies,
OPUS-MT's <pad> last), saved with save_pretrained, optionally trained briefly so that outputs depend on inputs.

The family contract tests build them in seconds (tiny, a few dozen steps); benchmarks/families.py builds larger ones
trained long enough to score BLEU. Nothing is downloaded.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autocompress.data import ParallelCorpus
from autocompress.model.batching import collate, encode_pairs, token_batches

FAMILIES = ("marian", "marian-separate", "mbart50", "m2m100", "nllb", "t5")
T5_PREFIX = "translate English to Spanish: "
NLLB_LANGUAGES = ("eng_Latn", "spa_Latn", "fra_Latn")
# What OPUS-MT's Marian configs set (scaled embeddings: without them the sinusoidal positions drown the tokens).
OPUS_MT = {"scale_embedding": True, "activation_function": "swish", "forced_eos_token_id": 0}


@dataclass(frozen=True)
class Size:
    d_model: int = 32
    layers: tuple[int, int] = (2, 2)
    heads: int = 4
    ffn: int = 64
    vocab: int = 400


def build_family(
    family: str,
    out: Path,
    corpus: ParallelCorpus,
    size: Size = Size(),
    seed: int = 0,
    weight_std: float | None = None,
) -> Path:
    """A randomly initialised model of the family with its tokenizer, saved in out (save_pretrained layout).

    weight_std: draw every weight matrix from N(0, weight_std²) instead of the family's small initialisation. An
    untrained model initialised so repeats one token whatever its input; with larger weights its outputs differ from
    sentence to sentence (at 1.0 almost every sentence gets its own), so that a test comparing two runtimes sees a
    wrong input (a wrong vocabulary, a missing prefix)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, config = _BUILDERS[family](Path(tmp), corpus, size)
        tokenizer.save_pretrained(out)
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_config(config)
    if weight_std is not None:
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() == 2:
                    parameter.normal_(0, weight_std)
    if family.startswith("marian"):
        # A model trained in transformers starts its decoder from <pad>'s own, non-zero embedding (training through
        # the tied output projection moves it); a fresh one has zeros there, which would hide that difference.
        with torch.no_grad():
            model.get_decoder().embed_tokens.weight[config.pad_token_id].normal_(0, 0.5)
    model.generation_config.bad_words_ids = [[config.pad_token_id]] if family.startswith("marian") else None
    model.save_pretrained(out)
    return out


def train_briefly(
    directory: Path,
    corpus: ParallelCorpus,
    steps: int,
    max_tokens: int = 1200,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], object] = lambda _message: None,
    warmup: float = 0.1,
) -> Path:
    """Train the saved model in place on the corpus (its task applied), with a linear warm-up (a fraction of the
    steps) and decay. Post-norm models (Marian) need the longer warm-up and lower rate the demo teacher had."""
    from autocompress.model.load import load_model

    loaded = load_model(str(directory))
    model, tokenizer = loaded.model, loaded.tokenizer
    src, tgt = encode_pairs(tokenizer, loaded.task.sources(corpus.sources), corpus.references, 96)
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98))
    warm = max(1, round(steps * warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.05, (steps - s) / max(1, steps - warm)))
    )
    model.train()
    batches: list[list[int]] = []
    for step in range(1, steps + 1):
        if not batches:
            batches = token_batches(lengths, max_tokens, rng)
        loss = model(**collate(src, tgt, batches.pop(), tokenizer.pad_token_id)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps:
            log(f"{directory.name}: step {step}/{steps} loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(directory)
    return directory


def _spm(texts: Sequence[str], prefix: Path, vocab: int, model_type: str = "unigram", **ids: int) -> Path:
    import sentencepiece as spm

    corpus = prefix.with_suffix(".txt")
    corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab,
        model_type=model_type,
        character_coverage=1.0,
        num_threads=1,  # more threads make the vocabulary depend on scheduling
        minloglevel=2,
        **{f"{name}_id": value for name, value in ids.items()},
    )
    return prefix.with_suffix(".model")


def _pieces(model_file: Path) -> list[tuple[str, float]]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(model_file))
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


def _marian_vocab(model_file: Path, path: Path) -> int:
    """OPUS-MT's layout: the sentencepiece pieces in order (</s> 0, <unk> 1), then <pad> appended last."""
    vocab = {piece: i for i, (piece, _) in enumerate(_pieces(model_file))}
    vocab["<pad>"] = len(vocab)
    path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return len(vocab)


def _bart_config(model_type: str, tokenizer: Any, size: Size, **extra: Any) -> Any:
    from transformers import AutoConfig

    ids = [*tokenizer.get_vocab().values(), *tokenizer.all_special_ids]
    settings = {
        "vocab_size": max(len(tokenizer), max(ids) + 1),
        "decoder_start_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    return AutoConfig.for_model(
        model_type,
        d_model=size.d_model,
        encoder_layers=size.layers[0],
        decoder_layers=size.layers[1],
        encoder_attention_heads=size.heads,
        decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.ffn,
        decoder_ffn_dim=size.ffn,
        max_position_embeddings=256,
        dropout=0.0,
        **(settings | extra),
    )


def _marian(work: Path, corpus: ParallelCorpus, size: Size) -> tuple[Any, Any]:
    from transformers import MarianTokenizer

    model_file = _spm([*corpus.sources, *corpus.references], work / "spm", size.vocab - 1, eos=0, unk=1, bos=-1)
    n = _marian_vocab(model_file, work / "vocab.json")
    tokenizer = MarianTokenizer(
        source_spm=str(model_file),
        target_spm=str(model_file),
        vocab=str(work / "vocab.json"),
        source_lang="en",
        target_lang="es",
    )
    return tokenizer, _bart_config("marian", tokenizer, size, vocab_size=n, decoder_start_token_id=n - 1, **OPUS_MT)


def _marian_separate(work: Path, corpus: ParallelCorpus, size: Size) -> tuple[Any, Any]:
    """Two sentencepiece models and two vocabularies of the same size, <pad> last in both (as OPUS-MT's)."""
    from transformers import MarianTokenizer

    source = _spm(corpus.sources, work / "source", size.vocab - 1, eos=0, unk=1, bos=-1)
    target = _spm(corpus.references, work / "target", size.vocab - 1, eos=0, unk=1, bos=-1)
    n = _marian_vocab(source, work / "vocab.json")
    _marian_vocab(target, work / "target_vocab.json")
    tokenizer = MarianTokenizer(
        source_spm=str(source),
        target_spm=str(target),
        vocab=str(work / "vocab.json"),
        target_vocab_file=str(work / "target_vocab.json"),
        source_lang="en",
        target_lang="es",
        separate_vocabs=True,
    )
    config = _bart_config(
        "marian",
        tokenizer,
        size,
        vocab_size=n,
        decoder_vocab_size=n,
        share_encoder_decoder_embeddings=False,
        decoder_start_token_id=n - 1,
        **OPUS_MT,
    )
    return tokenizer, config


def _fairseq_spm(work: Path, corpus: ParallelCorpus, size: Size) -> Path:
    return _spm([*corpus.sources, *corpus.references], work / "spm", size.vocab, bos=0, pad=1, eos=2, unk=3)


def _mbart50(work: Path, corpus: ParallelCorpus, size: Size) -> tuple[Any, Any]:
    from transformers import MBart50Tokenizer

    pieces = _pieces(_fairseq_spm(work, corpus, size))
    tokenizer = MBart50Tokenizer(vocab=pieces, src_lang="en_XX", tgt_lang="es_XX")
    return tokenizer, _bart_config("mbart", tokenizer, size)


def _m2m100(work: Path, corpus: ParallelCorpus, size: Size) -> tuple[Any, Any]:
    from transformers import M2M100Tokenizer

    model_file = _fairseq_spm(work, corpus, size)
    vocab = {piece: i for i, (piece, _) in enumerate(_pieces(model_file))}
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = M2M100Tokenizer(str(work / "vocab.json"), str(model_file), src_lang="en", tgt_lang="es")
    config = _bart_config("m2m_100", tokenizer, size)
    config.vocab_size = max(config.vocab_size, *tokenizer.lang_token_to_id.values()) + 1  # languages after the vocab
    return tokenizer, config


def _nllb(work: Path, corpus: ParallelCorpus, size: Size) -> tuple[Any, Any]:
    """NLLB's tokenizer is a SentencePiece BPE, language codes as extra special tokens; its model is M2M100's."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import NllbTokenizer

    bpe = SentencePieceBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    bpe.train_from_iterator([*corpus.sources, *corpus.references], size.vocab, special_tokens=specials)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = NllbTokenizer(
        vocab=model["vocab"],
        merges=merges,
        extra_special_tokens=list(NLLB_LANGUAGES),
        src_lang="eng_Latn",
        tgt_lang="spa_Latn",
    )
    return tokenizer, _bart_config("m2m_100", tokenizer, size)


def _t5(work: Path, corpus: ParallelCorpus, size: Size) -> tuple[Any, Any]:
    from transformers import AutoConfig, T5Tokenizer

    texts = [*(T5_PREFIX + s for s in corpus.sources), *corpus.references]
    pieces = _pieces(_spm(texts, work / "spm", size.vocab, pad=0, eos=1, unk=2, bos=-1))
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0)
    config = AutoConfig.for_model(
        "t5",
        vocab_size=len(tokenizer),
        d_model=size.d_model,
        d_kv=size.d_model // size.heads,
        d_ff=size.ffn,
        num_layers=size.layers[0],
        num_decoder_layers=size.layers[1],
        num_heads=size.heads,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        task_specific_params={"translation_en_to_es": {"prefix": T5_PREFIX}},
    )
    return tokenizer, config


_BUILDERS: dict[str, Callable[[Path, ParallelCorpus, Size], tuple[Any, Any]]] = {
    "marian": _marian,
    "marian-separate": _marian_separate,
    "mbart50": _mbart50,
    "m2m100": _m2m100,
    "nllb": _nllb,
    "t5": _t5,
}
