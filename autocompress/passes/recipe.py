"""A recipe: the ordered pass configs that turn the teacher into one student. Frozen, versioned, content-hashed.

The hash is taken over the canonical form (every parameter present, defaults filled in, keys sorted), so two recipes
that build the same student have the same id however they were written. The task (source prefix, language pair;
autocompress.task) is part of it where the model has one: the same passes on another task make another student.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from autocompress.passes import PASSES, STAGE_ORDER
from autocompress.passes.base import RecipeError
from autocompress.task import Task

RECIPE_VERSION = 1


@dataclass(frozen=True)
class PassConfig:
    name: str
    params: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs: hashable and order-free

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @classmethod
    def make(cls, name: str, params: dict[str, Any] | None = None) -> PassConfig:
        """Validate against the pass's declared parameters and fill in defaults."""
        if name not in PASSES:
            raise RecipeError(f"unknown pass {name!r}: known passes are {', '.join(sorted(PASSES))}")
        declared = {p.name: p for p in PASSES[name].params}
        given = dict(params or {})
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise RecipeError(
                f"pass {name!r} has no parameter {unknown[0]!r}: its parameters are {', '.join(sorted(declared))}"
            )
        values = {k: p.validate(name, given.get(k, p.default)) for k, p in declared.items()}
        return cls(name, tuple(sorted(values.items())))


@dataclass(frozen=True)
class Recipe:
    passes: tuple[PassConfig, ...] = ()
    seed: int = 0
    version: int = RECIPE_VERSION
    task: Task = field(default_factory=Task)

    def __post_init__(self) -> None:
        names = [p.name for p in self.passes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise RecipeError(f"pass {repeated[0]!r} appears more than once in the recipe: give it once")
        stages = [STAGE_ORDER.index(PASSES[n].stage) for n in names]
        if stages != sorted(stages):
            order = " → ".join(STAGE_ORDER)
            raise RecipeError(f"recipe passes {names} are out of order: stages run {order}")

    @classmethod
    def make(
        cls, passes: list[tuple[str, dict[str, Any]]] | None = None, seed: int = 0, task: Task | None = None
    ) -> Recipe:
        return cls(tuple(PassConfig.make(name, params) for name, params in passes or []), seed, task=task or Task())

    def without(self, name: str) -> Recipe:
        return Recipe(tuple(p for p in self.passes if p.name != name), self.seed, self.version, self.task)

    def get(self, name: str) -> PassConfig | None:
        return next((p for p in self.passes if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        found = {
            "version": self.version,
            "seed": self.seed,
            "passes": [{"name": p.name, "params": p.as_dict()} for p in self.passes],
        }
        if self.task.to_dict():  # absent where there is none, so that such recipes keep the ids they always had
            found["task"] = self.task.to_dict()
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        version = data.get("version", RECIPE_VERSION)
        if version != RECIPE_VERSION:
            raise RecipeError(f"recipe version {version} is not supported: this autocompress reads {RECIPE_VERSION}")
        passes = tuple(PassConfig.make(p["name"], p.get("params", {})) for p in data.get("passes", []))
        return cls(passes, int(data.get("seed", 0)), task=Task.from_dict(data.get("task")))

    @property
    def id(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
