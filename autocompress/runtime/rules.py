"""generate()'s logits processors for a model, as the runtime loops apply them at every step (artifact.json
`decoding`: written by the exporter from the model's generation config)."""

from __future__ import annotations

from typing import Any

import numpy as np


def apply_rules(scores: np.ndarray, rules: dict[str, Any], step: int, max_new_tokens: int) -> np.ndarray:
    """generate()'s logits processors for this model: suppressed tokens, forced first and forced last token."""
    if rules["suppressed_token_ids"]:
        scores[:, rules["suppressed_token_ids"]] = -np.inf
    forced = rules["forced_bos_token_id"] if step == 0 else None
    if step == max_new_tokens - 1 and rules["forced_eos_token_id"] is not None:
        forced = rules["forced_eos_token_id"]
    if forced is not None:
        scores[:] = -np.inf
        scores[:, forced] = 0.0
    return scores
