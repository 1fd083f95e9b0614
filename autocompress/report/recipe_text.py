"""A recipe in a few words, for people choosing from a table or a plot: "2+1 layers, heads −50 %, FFN 75 %, 200
steps, ct2 int8, shortlist 25+300". Every output that names a model (tables, plots, report, cards, `pareto`) uses it.
"""

from __future__ import annotations

from typing import Any

from autocompress.passes import PASSES


def describe(recipe: dict[str, Any], layers: tuple[int, int] | None = None) -> str:
    """Each pass's own words (Pass.describe) in the recipe's order; "teacher" first for a recipe that neither changes
    the student's structure nor trains it. `layers`: the teacher's (encoder, decoder) counts, for layers kept whole."""
    passes = {p["name"]: p.get("params", {}) for p in recipe.get("passes", [])}
    known = {name: PASSES[name] for name in passes if name in PASSES}
    words = [w for name, one in known.items() if (w := one.describe(passes[name], passes, layers))]
    if passes and not any(one.structural or one.stage == "train" for one in known.values()):
        words.insert(0, "teacher")
    if "precision" not in passes:
        words.append(str(PASSES["precision"].describe({}, passes, layers)))
    return ", ".join(words) if passes else "teacher, ort fp32"
