"""The pass contract: what every pass declares (its search parameters, its rules) and how it is applied; the registry.

A pass is one file with one subclass of Pass: its name, its stage, its parameters (name, range, default,
description), when a configuration does nothing, which values a parameter may take for a model and target, how its
parameters are suggested (define-by-run), how it adjusts to other passes' choices, which targets it can run on, and
`apply`. Model passes (ModelPass: stages init, structure, sparsity, train, vocabulary) apply to the student, with the
student's build (passes/context.py); artifact passes (ArtifactPass: stage artifact) to an ArtifactBuild, the exported
model under construction. The recipe, the search space, the
student builder, the artifact builder and the worker read the registry, so a new pass is its file, a `register`
call, and its lines in a search-space YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from autocompress.errors import UserInputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from autocompress.passes.context import StudentBuild
    from autocompress.passes.recipe import PassConfig, Recipe
    from autocompress.teacher.context import TeacherContext

STAGE_ORDER = ("init", "structure", "sparsity", "train", "vocabulary", "artifact")


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


@dataclass(frozen=True)
class SpaceInfo:
    """What suggesting a recipe knows besides the space: the teacher, the target, and the kind of student."""

    teacher_layers: dict[str, int]
    device: str
    family: str  # the teacher's model_type
    student: str = "pruned"  # 'teacher': the trial keeps the teacher's weights (artifact passes only)
    fidelity: bool = False  # training budgets come in rungs (the space's `fidelity:`), trained on by continuation


# ask(pass name, parameter, allowed values or None, name suffix) → the trial's value; suggest() calls it
Ask = Callable[[str, str, "tuple[Any, ...] | None", str], Any]
Choices = dict[str, dict[str, Any]]  # pass name → the parameters chosen so far
TeacherLayers = tuple[int, int] | None  # the teacher's (encoder, decoder) layer counts, where a description needs them


@dataclass
class ArtifactBuild:
    """What artifact passes work on: the trained student, and the directory its artifact is built in."""

    student: Any  # transformers PreTrainedModel
    tokenizer: Any
    recipe: Recipe
    out: Path  # the first artifact pass creates it; later ones change it in place
    onnx_fp32: Callable[[], Path]  # the student's fp32 ONNX export, made (and cached) on first call
    calibration: Sequence[str] = ()  # source sentences, for calibrated quantization
    teacher: TeacherContext | None = None  # for passes that read teacher artifacts (the shortlist's table)


class Pass:
    name: ClassVar[str]
    stage: ClassVar[str]  # one of STAGE_ORDER
    params: ClassVar[tuple[Param, ...]]
    structural: ClassVar[bool] = False  # changes the student's weights or shape: the student is then trained
    always: ClassVar[bool] = False  # in every recipe (precision: every trial has an artifact)

    def is_noop(self, params: dict[str, Any]) -> bool:
        """Whether a configuration changes nothing (such a pass is left out of recipes). By default: every
        parameter at its default."""
        return all(params.get(p.name, p.default) == p.default for p in self.params)

    def wanted(self, chosen: Choices, space: SpaceInfo) -> bool:
        """Whether a recipe asks for this pass at all, given what was chosen before it. Model passes need a pruned
        student; training is wanted when a structural pass changed the student."""
        if self.stage == "artifact":
            return True
        if self.stage == "train":
            return any(p.structural and not p.is_noop(chosen.get(p.name, {})) for p in PASSES.values())
        return space.student == "pruned"

    def included(self, params: dict[str, Any], chosen: Choices, space: SpaceInfo) -> bool:
        """Whether the recipe holds this pass with these parameters."""
        return self.always or not self.is_noop(params)

    def options(self, param: Param, chosen: Choices, space: SpaceInfo) -> tuple[tuple[Any, ...] | None, str]:
        """(the values a parameter may take for this model and target, None for its declared range; a suffix for
        its Optuna name, where its values depend on another choice)."""
        return None, ""

    def suggest(self, ask: Ask, chosen: Choices, space: SpaceInfo) -> None:
        """Ask for each parameter that matters given the values chosen so far (Param.when)."""
        defaults = {p.name: p.default for p in self.params}
        for param in self.params:
            if param.relevant(defaults | chosen[self.name]):
                ask(self.name, param.name, *self.options(param, chosen, space))

    def constrain(self, chosen: Choices, space: SpaceInfo) -> None:
        """Adjust this pass's choices to the other passes' (called after every pass has suggested)."""

    def check_target(self, config: PassConfig, device: str) -> None:
        """Refuse, before any work, a configuration the target device cannot run (a RecipeError naming why)."""

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        """The teacher artifacts (teacher/prepare.py) trials will ask for, given the values a space allows each of
        this pass's parameters (a range as its (low, high)): what a search prepares before its trials."""
        return ()

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        """This pass's words in a recipe's few-word description ("2+1 layers", "ct2 int8"), None for none; `recipe`
        maps each of the recipe's passes to its parameters, `layers` is the teacher's (encoder, decoder) counts."""
        return None


class ModelPass(Pass):
    """A pass of a model stage (init, structure, sparsity, train, vocabulary): it changes the student."""

    def apply(self, student: PreTrainedModel, config: PassConfig, build: StudentBuild) -> None:
        raise NotImplementedError


class ArtifactPass(Pass):
    """A pass of the artifact stage: it builds or changes the deployed artifact of the trained student."""

    stage: ClassVar[str] = "artifact"

    def apply(self, subject: ArtifactBuild, config: PassConfig) -> None:
        raise NotImplementedError


PASSES: dict[str, Pass] = {}  # name → pass, filled by register()


def register(instance: Pass) -> Pass:
    if instance.stage not in STAGE_ORDER:
        raise ValueError(f"pass {instance.name!r}: stage {instance.stage!r} is not one of {', '.join(STAGE_ORDER)}")
    PASSES[instance.name] = instance
    return instance


def unregister(name: str) -> None:
    PASSES.pop(name, None)


def percent(value: Any) -> str:
    """A fraction as a description shows it: 0.5 → "50 %"."""
    return f"{round(float(value) * 100)} %" if isinstance(value, int | float) else "?"


def in_stage_order() -> list[Pass]:
    return sorted(PASSES.values(), key=lambda p: STAGE_ORDER.index(p.stage))
