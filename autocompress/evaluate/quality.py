"""BLEU and chrF of the artifact's own translations (sacrebleu), decoding settings pinned in the signature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autocompress.evaluate import Measurement
from autocompress.evaluate.bleu import score_translations

if TYPE_CHECKING:
    from autocompress.data import ParallelCorpus
    from autocompress.runtime import Seq2SeqRuntime
    from autocompress.target import TargetSpec

BLEU_BATCH = 32  # batch composition changes padding, hence float sums: pinned so scores reproduce exactly


def artifact_quality(runtime: Seq2SeqRuntime, corpus: ParallelCorpus, target: TargetSpec) -> dict[str, Measurement]:
    hyps = runtime.translate(
        list(corpus.sources), batch_size=BLEU_BATCH, max_length=target.max_length, beam=target.beam
    )
    bleu, chrf = score_translations(hyps, list(corpus.references))
    decoding = f"{target.decoding_signature()}|batch:{BLEU_BATCH}|data:{corpus.name}|n:{len(corpus)}"
    return {
        "bleu": Measurement("bleu", round(bleu.score, 2), "BLEU", f"{bleu.signature}|{decoding}"),
        "chrf": Measurement("chrf", round(chrf.score, 2), "chrF", f"{chrf.signature}|{decoding}"),
    }
