"""BLEU and chrF of the artifact's own translations (sacrebleu), decoding settings pinned in the signature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autocompress.evaluate import Measurement
from autocompress.evaluate.bleu import score_translations
from autocompress.runtime.registry import RUNTIMES

if TYPE_CHECKING:
    from autocompress.data import ParallelCorpus
    from autocompress.runtime import Seq2SeqRuntime
    from autocompress.target import TargetSpec

BLEU_BATCH = 32  # batch composition changes padding, hence float sums: pinned so scores reproduce exactly
# Where a sentence's translation depends on the other sentences of its batch and their padding (a runtime's
# `batch_dependent` precisions: onnxruntime's dynamic quantization takes one activation scale per tensor, int8: 20.98
# BLEU at batch 32, 21.18 at batch 1 on the demo teacher), the artifact is scored at the target's first batch size, the
# one it is deployed and timed at. So are artifacts with a lexical shortlist: their candidates are the union over the
# batch (the demo teacher, CTranslate2 int8 with a 25+500 shortlist: 20.75 dev BLEU at batch 32, 20.25 at batch 1).
ORDER = "longest-first"  # Seq2SeqRuntime.translate batches sentences by length, longest first


def quality_batch(runtime: Seq2SeqRuntime, target: TargetSpec) -> int:
    manifest = runtime.manifest
    if manifest.dtype in RUNTIMES[manifest.runtime].batch_dependent or manifest.shortlist:
        return target.batch_sizes[0]
    return BLEU_BATCH


def artifact_quality(runtime: Seq2SeqRuntime, corpus: ParallelCorpus, target: TargetSpec) -> dict[str, Measurement]:
    batch = quality_batch(runtime, target)
    hyps = runtime.translate(list(corpus.sources), batch_size=batch, max_length=target.max_length, beam=target.beam)
    bleu, chrf = score_translations(hyps, list(corpus.references))
    order = f"|order:{ORDER}" if batch > 1 else ""
    decoding = (
        f"device:{target.device}|{target.decoding_signature()}|batch:{batch}{order}|data:{corpus.name}|n:{len(corpus)}"
    )
    return {
        "bleu": Measurement("bleu", round(bleu.score, 2), "BLEU", f"{bleu.signature}|{decoding}"),
        "chrf": Measurement("chrf", round(chrf.score, 2), "chrF", f"{chrf.signature}|{decoding}"),
    }
