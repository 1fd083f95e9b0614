"""One student's build: the teacher's context it draws on (teacher/context.py), and what its model passes share and
record while they turn a copy of the teacher into the student."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autocompress.passes.distill import TrainingState
    from autocompress.passes.sparsity import Sparsifier
    from autocompress.teacher.context import TeacherContext


@dataclass
class StudentBuild:
    ctx: TeacherContext
    seed: int = 0  # the recipe's: batch order and initialisation of anything new
    sparsifier: Sparsifier | None = None  # set by the sparsity pass, stepped by distillation
    metrics: dict[str, Any] = field(default_factory=dict)  # what the passes measured, for the trial's record
    # Multi-fidelity: a state of this student's training at fewer steps to continue from, and where states go.
    resume: TrainingState | None = None
    save_state: Callable[[TrainingState], object] | None = None
