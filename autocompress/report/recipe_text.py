"""A recipe in a few words, for people choosing from a table or a plot: "2+1 layers, heads −50 %, FFN 75 %, 200
steps, ct2 int8, shortlist 25+300". Every output that names a model (tables, plots, report, cards, `pareto`) uses it.
"""

from __future__ import annotations

from typing import Any

RUNTIME = {"onnxruntime": "ort", "ctranslate2": "ct2"}


def describe(recipe: dict[str, Any], layers: tuple[int, int] | None = None) -> str:
    """`layers`: the teacher's (encoder, decoder) layer counts, for the layers a recipe keeps whole (null)."""
    passes = {p["name"]: p.get("params", {}) for p in recipe.get("passes", [])}
    words: list[str] = []
    if "layers" in passes:
        kept = [passes["layers"].get(f"{stack}_layers") for stack in ("encoder", "decoder")]
        whole = layers or ("all", "all")
        words.append(f"{kept[0] or whole[0]}+{kept[1] or whole[1]} layers")
    elif passes and not _structural(passes) and "distill" not in passes:
        words.append("teacher")
    if "heads" in passes:
        words.append(f"heads −{_percent(passes['heads'].get('fraction'))}")
    if "ffn" in passes:
        words.append(f"FFN {_percent(passes['ffn'].get('keep'))}")
    if "sparsity" in passes:
        words.append(f"sparsity {_percent(passes['sparsity'].get('target'))}")
    if "distill" in passes:
        source = passes.get("init", {}).get("source")
        words.append(f"{passes['distill'].get('steps')} steps" + (f" ({source})" if source else ""))
    precision = passes.get("precision", {"runtime": "onnxruntime", "dtype": "fp32"})
    words.append(f"{RUNTIME.get(precision.get('runtime', 'onnxruntime'), '?')} {precision.get('dtype', 'fp32')}")
    vocabulary = passes.get("vocabulary", {})
    if vocabulary.get("keep") == "used":
        words.append(f"vocab ≥{vocabulary.get('min_count', 1)}")
    if "shortlist" in passes:
        shortlist = passes["shortlist"]
        least = f" p≥{shortlist['min_prob']:g}" if shortlist.get("min_prob") else ""
        words.append(f"shortlist {shortlist.get('top_k')}+{shortlist.get('frequent')}{least}")
    return ", ".join(words) if words else "teacher, ort fp32"


def _structural(passes: dict[str, Any]) -> bool:
    return any(name in passes for name in ("layers", "heads", "ffn", "sparsity"))


def _percent(value: Any) -> str:
    return f"{round(float(value) * 100)} %" if isinstance(value, int | float) else "?"
