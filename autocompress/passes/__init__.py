"""The compression passes. Each module declares NAME, STAGE, PARAMS and apply(model, config, ctx).

Stages run in this order: structure (layers, heads, FFN neurons) → sparsity (its schedule runs inside training) →
train (distillation) → artifact (precision, on the exported model).
"""

from __future__ import annotations

from types import ModuleType

from autocompress.passes import distill, ffn, heads, layers, precision, sparsity

STAGE_ORDER = ("structure", "sparsity", "train", "artifact")
PASSES: dict[str, ModuleType] = {m.NAME: m for m in (layers, heads, ffn, sparsity, distill, precision)}

__all__ = ["PASSES", "STAGE_ORDER"]
