"""Everything derived from the teacher, built ahead of a search: `autocompress prepare`, and a search's first job.

Importance scores (heads, neurons, layers), the teacher's translations of the training data (sequence-level KD), how
often each target token occurs in them and the references (vocabulary trimming) and, for a space whose students may
start from one, the elastic student: each built once per (teacher, data, task,
settings) into the artifact cache and reused by every later trial and study; what is there already is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from autocompress.teacher.elastic import ElasticSettings
from autocompress.teacher.lexicon import table_key

if TYPE_CHECKING:
    from autocompress.teacher.context import TeacherContext


# name → (the settings it is cached by, how it is built or found), each given the context and the elastic settings
_ARTIFACTS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "importance": (lambda ctx, _: asdict(ctx.importance_settings), lambda ctx, _: ctx.importance()),
    "teacher_translations": (lambda ctx, _: ctx.translations_key(), lambda ctx, _: ctx.teacher_translations()),
    "target_token_counts": (lambda ctx, _: ctx.translations_key(), lambda ctx, _: ctx.target_token_counts()),
    "shortlist_table": (lambda ctx, _: table_key(ctx), lambda ctx, _: ctx.shortlist_table()),
    "elastic": (
        lambda _, elastic: elastic.to_dict() if elastic is not None else None,
        lambda ctx, elastic: ctx.elastic_student(elastic) if elastic is not None else None,
    ),
}
ARTIFACTS = tuple(_ARTIFACTS)


def missing(ctx: TeacherContext, artifacts: tuple[str, ...], elastic: ElasticSettings | None = None) -> tuple[str, ...]:
    """Which of `artifacts` are not built yet (neither shipped nor in the cache): what preparing would cost."""
    return tuple(
        name
        for name in artifacts
        if ctx.cache.find(name, {**ctx.teacher_key, "settings": _ARTIFACTS[name][0](ctx, elastic)}) is None
    )


def prepare(
    ctx: TeacherContext, artifacts: tuple[str, ...], elastic: ElasticSettings | None = None
) -> dict[str, dict[str, Any]]:
    """Build (or find) each artifact; returns name → {hit, seconds to build, path}, as found when it was asked for."""
    found = {}
    for name in artifacts:
        if name not in _ARTIFACTS:
            raise ValueError(f"unknown teacher artifact {name!r}: {', '.join(ARTIFACTS)}")
        _ARTIFACTS[name][1](ctx, elastic)
        found[name] = dict(ctx.used.get(name, {}))
    return found
