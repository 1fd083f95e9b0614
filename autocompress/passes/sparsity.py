"""Unstructured magnitude sparsity of the layers' weight matrices, global or per layer.

Reached gradually during distillation on the cubic schedule of Zhu & Gupta (2017) — over the training, or with the
wsd schedule over its warm-up, which every budget shares — and without training at once. Masks only grow, and are
re-applied after every optimizer step, so pruned weights stay zero. The sparsity recorded is counted on the weights
afterwards, not assumed from the target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.passes.base import ModelPass, Param, TeacherLayers, percent

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig

PARAMS = (
    Param("target", "float", 0.0, "fraction of layer weights set to zero", low=0.0, high=0.95),
    Param(
        "scope",
        "categorical",
        "global",
        "one magnitude threshold for all layers, or one per matrix",
        choices=("global", "per_layer"),
    ),
    Param("start", "float", 0.0, "fraction of the training steps before pruning begins", low=0.0, high=0.9),
    Param("end", "float", 0.7, "fraction of the training steps at which the target is reached", low=0.05, high=1.0),
    Param("every", "int", 10, "training steps between mask updates", low=1, high=1000),
)


class Sparsifier:
    def __init__(self, model: PreTrainedModel, config: PassConfig) -> None:
        self.weights = [linear.weight for _, linear in arch.prunable_linears(model)]
        self.masks = [torch.ones_like(w, dtype=torch.bool) for w in self.weights]
        self.target, self.scope = config["target"], config["scope"]
        self.start, self.end, self.every = config["start"], max(config["end"], config["start"]), config["every"]

    def level(self, step: int, total: int) -> float:
        progress = (step / max(total, 1) - self.start) / max(self.end - self.start, 1e-9)
        progress = min(max(progress, 0.0), 1.0)
        return self.target * (1.0 - (1.0 - progress) ** 3)

    def step(self, step: int, total: int) -> None:
        """Called after each optimizer step: update the masks on schedule, and keep pruned weights at zero."""
        if step % self.every == 0 or step == total:
            self.prune_to(self.level(step, total))
        else:
            self.apply()

    def prune_to(self, level: float) -> None:
        if level <= 0:
            return
        with torch.no_grad():
            if self.scope == "global":
                magnitudes = torch.cat([w.detach().abs().flatten() for w in self.weights])
                threshold = _kth_smallest(magnitudes, level)
                self.masks = [m & (w.abs() > threshold) for m, w in zip(self.masks, self.weights, strict=True)]
            else:
                self.masks = [
                    m & (w.abs() > _kth_smallest(w.detach().abs().flatten(), level))
                    for m, w in zip(self.masks, self.weights, strict=True)
                ]
        self.apply()

    def apply(self) -> None:
        with torch.no_grad():
            for w, m in zip(self.weights, self.masks, strict=True):
                w.mul_(m)

    def finish(self) -> None:
        self.prune_to(self.target)


def _kth_smallest(values: torch.Tensor, fraction: float) -> torch.Tensor:
    k = round(fraction * values.numel())
    if k == 0:
        return values.new_tensor(-1.0)
    return values.float().kthvalue(k).values.to(values.dtype)


class Sparsity(ModelPass):
    name = "sparsity"
    stage = "sparsity"
    params = PARAMS
    structural = True

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        return f"sparsity {percent(params.get('target'))}"

    def is_noop(self, params: dict[str, Any]) -> bool:
        return not params.get("target")

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        """Sets the schedule that distillation steps (or the student builder finishes, without training)."""
        if not self.is_noop(config.as_dict()):
            build.sparsifier = Sparsifier(student, config)
