"""--budget: completed trials ("20"), wall time ("90m", "2h", "45s"), or both ("20,2h" or the option twice)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from autocompress.errors import UserInputError

_UNITS = {"s": 1, "m": 60, "h": 3600}
_HELP = "give a number of completed trials (20), a wall time (90m, 2h, 45s), or both (20,2h)"


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    seconds: float | None = None

    def describe(self) -> str:
        parts = ([f"{self.trials} trials"] if self.trials else []) + (
            [f"{self.seconds / 60:g} min"] if self.seconds else []
        )
        return " or ".join(parts)


def parse_budget(values: str | list[str]) -> Budget:
    items = [part.strip() for value in ([values] if isinstance(values, str) else values) for part in value.split(",")]
    trials, seconds = None, None
    for item in items:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", item)
        if item.isdigit():
            if int(item) < 1 or trials is not None:
                raise UserInputError(f"budget {item!r} is not usable: {_HELP}")
            trials = int(item)
        elif match and float(match.group(1)) > 0 and seconds is None:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        else:
            raise UserInputError(f"budget {item!r} is not understood: {_HELP}")
    return Budget(trials, seconds)
