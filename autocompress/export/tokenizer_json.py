"""tokenizer.json beside an artifact's tokenizer: what transformers.js (and any `tokenizers` client) reads.

A fast tokenizer writes its own. Marian's is two sentencepiece models and a shared vocab.json, with no converter in
transformers 5, so it is built here from the `tokenizers` parts sentencepiece's own settings map onto: the source
model's pieces and scores under vocab.json's ids (a piece only the target model has gets a score below every source
piece, so source text never splits into it), its precompiled normaliser (nmt_nfkc), the metaspace pre-tokenizer
and decoder, and `</s>` appended. Tokens equal MarianTokenizer's (tests/test_standard_layout.py checks the demo
corpus). A Marian model with separate source and target vocabularies has no one-file form: none is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOKENIZER_JSON = "tokenizer.json"


def write_tokenizer_json(directory: Path) -> Path | None:
    """The tokenizer.json of the tokenizer saved in directory (kept if there is one); None where none can be made."""
    path = Path(directory) / TOKENIZER_JSON
    if path.exists():
        return path
    config = json.loads((Path(directory) / "tokenizer_config.json").read_text())
    if config.get("tokenizer_class") == "MarianTokenizer":
        if config.get("separate_vocabs") or not (Path(directory) / "source.spm").exists():
            return None
        marian_tokenizer(Path(directory), config).save(str(path))
        return path
    from autocompress.model.tokenizer import load_tokenizer

    backend = getattr(load_tokenizer(directory), "backend_tokenizer", None)
    if backend is None:
        return None
    backend.save(str(path))
    return path


def marian_tokenizer(directory: Path, config: dict[str, Any]) -> Any:
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((directory / "source.spm").read_bytes())
    vocab: dict[str, int] = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
    scores = {piece.piece: piece.score for piece in proto.pieces if piece.type == piece.NORMAL}
    floor = min(scores.values(), default=0.0) - 10.0
    pieces = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in pieces] != list(range(len(pieces))):
        raise ValueError(f"{directory}/vocab.json does not number its tokens 0..{len(pieces) - 1}")
    unk = config.get("unk_token", "<unk>")
    tokenizer = Tokenizer(Unigram([(piece, scores.get(piece, floor)) for piece, _ in pieces], unk_id=vocab[unk]))
    spec = proto.normalizer_spec
    steps = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    tokenizer.normalizer = normalizers.Sequence(steps)
    scheme = "always" if spec.add_dummy_prefix else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
    eos = config.get("eos_token", "</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A $B {eos}", special_tokens=[(eos, vocab[eos])]
    )
    specials = [config.get(key) for key in ("eos_token", "unk_token", "pad_token")]
    specials += [token["content"] for token in config.get("added_tokens_decoder", {}).values()]
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in dict.fromkeys(specials) if token in vocab]
    )
    return tokenizer
