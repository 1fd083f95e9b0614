"""Which model to export: a rule applied to the trials that meet the constraints."""

from __future__ import annotations

import numpy as np
from optuna.trial import FrozenTrial

RULES = ("fastest", "smallest", "knee", "best-bleu")
# p50 latencies this close to the fastest are a tie: re-measuring an artifact moves its p50 by about this much
# (benchmarks/fidelity.py), so which of them measured fastest is chance. The tie goes to the smaller artifact.
LATENCY_TIE = 0.03


def select(candidates: list[FrozenTrial], rule: str) -> FrozenTrial | None:
    """The chosen trial among the measured trials that meet the constraints, or None when there is none."""
    if not candidates:
        return None
    values = {t.number: t.user_attrs["values"] for t in candidates}
    if rule == "fastest":
        fastest = min(values[t.number]["latency_p50_ms"] for t in candidates)
        tied = [t for t in candidates if values[t.number]["latency_p50_ms"] <= fastest * (1 + LATENCY_TIE)]
        return min(tied, key=lambda t: (values[t.number]["size_mb"], -values[t.number]["bleu"]))
    if rule == "smallest":
        return min(candidates, key=lambda t: (values[t.number]["size_mb"], -values[t.number]["bleu"]))
    if rule == "best-bleu":
        return max(candidates, key=lambda t: (values[t.number]["bleu"], -values[t.number]["latency_p50_ms"]))
    return knee(candidates)


def knee(candidates: list[FrozenTrial]) -> FrozenTrial:
    """On the BLEU/latency front of the candidates, the point farthest from the line joining its two ends
    (both axes scaled to [0, 1]): where giving up more BLEU stops buying much speed."""
    points = sorted(
        ((t.user_attrs["values"]["latency_p50_ms"], t.user_attrs["values"]["bleu"], t) for t in candidates),
        key=lambda p: (p[0], -p[1]),
    )
    front, best_bleu = [], -np.inf
    for latency, bleu, trial in points:
        if bleu > best_bleu:
            front.append((latency, bleu, trial))
            best_bleu = bleu
    if len(front) < 3:
        return front[0][2]
    xy = np.array([(x, y) for x, y, _ in front], dtype=float)
    xy = (xy - xy.min(axis=0)) / np.maximum(xy.max(axis=0) - xy.min(axis=0), 1e-12)
    start, end = xy[0], xy[-1]
    direction = (end - start) / np.linalg.norm(end - start)
    offsets = xy - start
    distance = np.abs(offsets[:, 0] * direction[1] - offsets[:, 1] * direction[0])
    return front[int(distance.argmax())][2]
