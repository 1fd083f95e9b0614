"""The compression passes, one file each, registered here (autocompress.passes.base has the contract and registry).

Stages run in this order: init (the weights a student starts from) → structure (layers, heads, FFN neurons) →
sparsity (its schedule runs inside training) → train (distillation) → vocabulary (the output vocabulary trimmed)
→ artifact (precision: the runtime and numeric format of the exported model; then the shortlist it decodes with).
"""

from __future__ import annotations

from autocompress.passes.base import PASSES, STAGE_ORDER, Pass, in_stage_order, register, unregister
from autocompress.passes.distill import Distill
from autocompress.passes.ffn import FFN
from autocompress.passes.heads import Heads
from autocompress.passes.init import Init
from autocompress.passes.layers import Layers
from autocompress.passes.precision import Precision
from autocompress.passes.shortlist import Shortlist
from autocompress.passes.sparsity import Sparsity
from autocompress.passes.vocabulary import Vocabulary

for _pass in (Init(), Layers(), Heads(), FFN(), Sparsity(), Distill(), Vocabulary(), Precision(), Shortlist()):
    register(_pass)

__all__ = ["PASSES", "STAGE_ORDER", "Pass", "in_stage_order", "register", "unregister"]


from autocompress import plugins  # noqa: E402  (after the built-in entries: a plugin may replace one)

plugins.load()
