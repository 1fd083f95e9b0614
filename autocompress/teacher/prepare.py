"""Everything derived from the teacher, built ahead of a search: `autocompress prepare`, and a search's first job.

Importance scores (heads, neurons, layers), the teacher's translations of the training data (sequence-level KD), how
often each target token occurs in them and the references (vocabulary trimming) and, for a space whose students may
start from one, the elastic student: each built once per (teacher, data, task,
settings) into the artifact cache and reused by every later trial and study; what is there already is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autocompress.teacher.elastic import ElasticSettings, uses_elastic

if TYPE_CHECKING:
    from autocompress.passes.context import PassContext

ARTIFACTS = ("importance", "teacher_translations", "target_token_counts", "shortlist_table", "elastic")


def needed(space: Any) -> tuple[str, ...]:
    """What a search space's trials will ask for: importance when it prunes, translations when it distils on them or
    trims the output vocabulary to what they use."""
    found = []
    names = {d.name for d in space.dimensions}
    students = "pruned" in space.students  # a space of the teacher's weights alone trains nothing
    if students and any(n.split(".")[0] in ("layers", "heads", "ffn") for n in names):
        found.append("importance")
    methods = {v for d in space.dimensions if d.name == "distill.method" and students for v in d.values}
    elastic = uses_elastic(space) and students
    trims = space.dimension("vocabulary", "keep") is not None and "used" in space.dimension("vocabulary", "keep").values
    top_k = space.dimension("shortlist", "top_k")
    shortlists = top_k is not None and any(v != 0 for v in top_k.values)
    # trimming counts the translations' tokens; a shortlist pairs them with the source tokens
    if any("sequence" in str(m) for m in methods) or elastic or trims or shortlists:
        found.append("teacher_translations")
    if trims:
        found.append("target_token_counts")
    if shortlists:
        found.append("shortlist_table")
    if elastic:
        found.append("elastic")
    return tuple(found)


def missing(ctx: PassContext, artifacts: tuple[str, ...], elastic: ElasticSettings | None = None) -> tuple[str, ...]:
    """Which of `artifacts` are not built yet (neither shipped nor in the cache): what preparing would cost."""
    from dataclasses import asdict

    from autocompress.passes.shortlist import table_key

    settings = {
        "importance": lambda: asdict(ctx.importance_settings),
        "teacher_translations": ctx.translations_key,
        "target_token_counts": ctx.translations_key,
        "shortlist_table": lambda: table_key(ctx),
        "elastic": lambda: elastic.to_dict() if elastic is not None else None,
    }
    return tuple(
        name for name in artifacts if ctx.cache.find(name, {**ctx.teacher_key, "settings": settings[name]()}) is None
    )


def prepare(
    ctx: PassContext, artifacts: tuple[str, ...], elastic: ElasticSettings | None = None
) -> dict[str, dict[str, Any]]:
    """Build (or find) each artifact; returns name → {hit, seconds to build, path}, as found when it was asked for."""
    found = {}
    for name in artifacts:
        if name == "importance":
            ctx.importance()
        elif name == "teacher_translations":
            ctx.teacher_translations()
        elif name == "target_token_counts":
            from autocompress.passes.vocabulary import target_token_counts

            target_token_counts(ctx)
        elif name == "shortlist_table":
            from autocompress.passes.shortlist import shortlist_table

            shortlist_table(ctx)
        elif name == "elastic" and elastic is not None:
            ctx.elastic_student(elastic)
        else:
            raise ValueError(f"unknown teacher artifact {name!r}: {', '.join(ARTIFACTS)}")
        found[name] = dict(ctx.metrics.get("cache", {}).get(name, {}))
    return found
