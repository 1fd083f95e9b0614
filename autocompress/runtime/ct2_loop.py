"""Translation with a CTranslate2 artifact: batched, greedy or beam, token ids in and out.

CTranslate2 speaks token strings. Ids become source tokens through the artifact's own source vocabulary and output
tokens become ids through its target vocabulary (one shared file, or one file per side for models with separate
vocabularies), never through the tokenizer's token↔id maps, which for a separate-vocabulary Marian answer with the
target side for both. The compute type is the one the artifact was converted to: a device that cannot run it is an
error, not a silent fallback to another precision.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from autocompress.runtime.base import ArtifactRuntime


def read_vocabularies(directory: Path) -> tuple[list[str], list[str]]:
    """(source, target) token lists in id order."""
    shared = directory / "shared_vocabulary.json"
    if shared.exists():
        tokens = json.loads(shared.read_text())
        return tokens, tokens
    source = json.loads((directory / "source_vocabulary.json").read_text())
    return source, json.loads((directory / "target_vocabulary.json").read_text())


class CT2Seq2Seq(ArtifactRuntime):
    def __init__(self, directory: Path, threads: int = 0, device: str = "cpu", compute_type: str | None = None) -> None:
        import ctranslate2

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        super().__init__(directory)
        self.translator = ctranslate2.Translator(
            str(directory),
            device=device,
            compute_type=compute_type or self.manifest.precision.get("quantization", "default"),
            intra_threads=threads,
            inter_threads=1,
        )
        self.source_vocabulary, self.target_vocabulary = read_vocabularies(self.directory)
        self.target_ids = {token: i for i, token in enumerate(self.target_vocabulary)}

    def generate_ids(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        max_new_tokens: int,
        beam: int = 1,
        ignore_eos: bool = False,
    ) -> list[list[int]]:
        """The output ids of a batch (padding dropped); ignore_eos decodes exactly max_new_tokens. Where the model
        forces eos as its last token (generate()'s forced_eos_token_id), the output stops one token short of the
        limit, as transformers' does."""
        if not ignore_eos and self.manifest.decoding.get("forced_eos_token_id") is not None:
            max_new_tokens -= 1
        batch = [
            [self.source_vocabulary[i] for i in row[mask > 0]]
            for row, mask in zip(input_ids, attention_mask, strict=True)
        ]
        limits = {"min_decoding_length": max_new_tokens} if ignore_eos else {}
        try:
            results = self.translator.translate_batch(
                batch,
                beam_size=beam,
                max_decoding_length=max_new_tokens,
                max_batch_size=len(batch),
                use_vmap=self.manifest.shortlist is not None,  # the lexical shortlist, vmap.txt beside the model
                **limits,
            )
        except IndexError as error:
            if self.manifest.shortlist is None:
                raise
            # CTranslate2 pads a batch's candidates to a multiple of 16 and can pick a padded one when no real
            # candidate scores higher (seen with untrained models and narrow shortlists): a failed trial, not a
            # silent fallback to the whole vocabulary.
            raise RuntimeError(f"CTranslate2 could not decode with this shortlist ({error}): widen it") from error
        return [[self.target_ids[token] for token in r.hypotheses[0]] for r in results]
