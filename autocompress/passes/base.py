"""What every pass declares: its search parameters (name, range, default, description) and how it is applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from autocompress.errors import UserInputError


class RecipeError(UserInputError):
    """A recipe names an unknown pass or parameter, or a value outside its range."""


@dataclass(frozen=True)
class Param:
    """One search parameter. `low`/`high` bound numbers (inclusive); `choices` lists categorical values in order."""

    name: str
    kind: Literal["int", "float", "categorical"]
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    log: bool = False
    optional: bool = False  # None is allowed and means "not set" (see the description for what then applies)
    # (sibling, values) pairs: the parameter only matters when every named sibling has one of its values
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def relevant(self, config: dict[str, Any]) -> bool:
        """Whether this parameter changes anything, given its siblings' values (a search leaves it at its default)."""
        return all(config.get(sibling) in values for sibling, values in self.when)

    def allowed(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices or ())
        return f"{self.kind} in [{self.low}, {self.high}]" + (" or null" if self.optional else "")

    def validate(self, pass_name: str, value: Any) -> Any:
        """The value in canonical form (ints as int, floats as float), or a RecipeError naming pass and range."""
        problem = f"pass {pass_name!r} parameter {self.name!r} = {value!r} is invalid: allowed {self.allowed()}"
        if value is None and self.optional:
            return None
        if self.kind == "categorical":
            if value not in (self.choices or ()):
                raise RecipeError(problem)
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(problem)
        if self.kind == "int":
            if value != int(value):
                raise RecipeError(problem)
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise RecipeError(problem)
        return value
