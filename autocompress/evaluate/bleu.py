"""BLEU and chrF with sacrebleu; every score carries its signature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sacrebleu.metrics.base import Score


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[Score, Score]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenization, exp smoothing, chrF n=6 β=2)."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu_metric, chrf_metric = BLEU(), CHRF()
    refs = [list(references)]
    bleu = bleu_metric.corpus_score(list(hypotheses), refs)
    chrf = chrf_metric.corpus_score(list(hypotheses), refs)
    bleu.signature = str(bleu_metric.get_signature())
    chrf.signature = str(chrf_metric.get_signature())
    return bleu, chrf
