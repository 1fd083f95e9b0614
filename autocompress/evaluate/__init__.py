"""Objectives measured on an exported artifact. Each returns its value with the settings that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float
    unit: str
    signature: str  # every setting that could change the value, as sacrebleu signs its scores
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "signature": self.signature,
            "details": self.details,
        }
