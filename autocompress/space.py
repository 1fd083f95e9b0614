"""Search spaces: search_spaces/*.yaml → Optuna's native distributions, suggested define-by-run → a Recipe.

A space names, per pass, which parameters are searched and over what; anything not named keeps the pass's default.

    student: {choice: [teacher, pruned]}         # teacher: only the precision applies (cheap trials)
    passes:
      layers:
        encoder_layers: {int: [1, teacher]}      # 'teacher': the teacher's own count
      heads:
        fraction: {float: [0.0, 0.5], step: 0.25}
      distill:
        method: {choice: [word, finetune]}
        temperature: {float: [1.0, 4.0], log: true}
        steps: 200                                # a plain value is fixed, not searched
      precision:
        runtime: {choice: [onnxruntime, ctranslate2]}
        block_size: {ordered: [32, 64, 128]}     # order kept: sampled as an index

Each value is checked against the pass's declared range when the file is loaded. Conditional structure is sampled
define-by-run, by rules each pass owns (autocompress.passes.base.Pass): a parameter a pass declares relevant only for
some sibling value (`Param.when`) is suggested only then; the precision's dtype is suggested per runtime among the
dtypes that runtime runs on the target; a student that is structurally the teacher is not distilled; CTranslate2
students lose the same number of heads in every layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.errors import UserInputError
from autocompress.inputs import integer, mapping, read_yaml_mapping
from autocompress.passes import PASSES, in_stage_order
from autocompress.passes.base import Choices, Param, SpaceInfo
from autocompress.passes.recipe import PassConfig, Recipe
from autocompress.task import Task

if TYPE_CHECKING:
    import optuna

SPACES_DIR = Path(__file__).resolve().parent / "search_spaces"
KINDS = ("int", "float", "choice", "ordered")
TEACHER = "teacher"  # an int bound that stands for the teacher's count (layers)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter, or a fixed one (kind 'fixed', value in `values[0]`)."""

    pass_name: str
    param: str
    kind: str
    values: tuple[Any, ...]  # (low, high) for int/float, the options for choice/ordered, (value,) for fixed
    step: float | None = None
    log: bool = False

    @property
    def name(self) -> str:
        return f"{self.pass_name}.{self.param}"


@dataclass(frozen=True)
class Fidelity:
    """Multi-fidelity training budgets (`fidelity:` in the YAML): every student is trained rungs[0] distillation steps
    (0: measured as sliced, a free first rung for students that start from the elastic student); 1/eta of a rung, those
    whose training is expected to add most to the front measured so far (engine/promotion.py), are trained on to the
    next rung, continuing from where they stopped (the wsd schedule: autocompress.passes.distill)."""

    rungs: tuple[int, ...]
    eta: int = 4


@dataclass(frozen=True)
class SearchSpace:
    name: str
    dimensions: tuple[Dimension, ...]
    target: dict[str, Any]  # TargetSpec settings the space asks for (the command line overrides them)
    evaluation: dict[str, Any]
    students: tuple[str, ...] = ("pruned",)  # 'teacher': the trial keeps the teacher's weights (precision only)
    sha256: str = ""  # of the file's text: recorded with the study's settings
    fidelity: Fidelity | None = None
    elastic: dict[str, Any] = field(default_factory=dict)  # how the elastic student trains (teacher.elastic)
    # `start:` recipes tried first (optuna's enqueue_trial), as parameter name → value; those not named are sampled
    start: tuple[dict[str, Any], ...] = ()

    def dimension(self, pass_name: str, param: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.pass_name == pass_name and d.param == param), None)

    def searched(self) -> list[str]:
        return [d.name for d in self.dimensions if d.kind != "fixed"]


def teacher_only(space: SearchSpace) -> SearchSpace:
    """The space less everything that needs the teacher's one-off artifacts: trials keep the teacher's weights, its
    whole output vocabulary and no shortlist (the plan's fallback when the budget fits none of them)."""
    fixed = {("vocabulary", "keep"): "all", ("shortlist", "top_k"): 0}
    dims = tuple(
        dataclasses.replace(d, kind="fixed", values=(fixed[key],), step=None, log=False)
        if (key := (d.pass_name, d.param)) in fixed
        else d
        for d in space.dimensions
    )
    start = tuple(
        {k: v for k, v in recipe.items() if k.split(".")[0] not in ("vocabulary", "shortlist")}
        for recipe in space.start
        if recipe.get("student", space.students[0]) == "teacher"
    )
    return dataclasses.replace(space, dimensions=dims, students=("teacher",), fidelity=None, start=start)


def resolve_space(spec: str | Path) -> Path:
    """A path, or the name of a shipped space (cpu, cuda, quick)."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = SPACES_DIR / f"{spec}.yaml"
    if not shipped.exists():
        names = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
        raise UserInputError(f"search space {spec!r} is neither a YAML file nor a shipped space: use one of {names}")
    return shipped


def load_space(spec: str | Path) -> SearchSpace:
    path = resolve_space(spec)
    data = read_yaml_mapping(path, "search space")
    text = path.read_text(encoding="utf-8")
    if not isinstance(data.get("passes"), dict):
        raise UserInputError(f"search space {path} needs a 'passes:' mapping of pass name to parameters")
    sections = {"passes", "target", "evaluation", "description", "student", "fidelity", "elastic", "start"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise UserInputError(
            f"search space {path}: unknown section {unknown[0]!r} ({', '.join(sorted(sections - {'description'}))})"
        )
    student = data.get("student", "pruned")
    students = tuple(student["choice"]) if isinstance(student, dict) and "choice" in student else (student,)
    if not students or not set(students) <= {"teacher", "pruned"}:
        raise UserInputError(f"search space {path}: student must be teacher, pruned or {{choice: [teacher, pruned]}}")
    dims = []
    for pass_name, params in data["passes"].items():
        if pass_name not in PASSES:
            raise UserInputError(f"search space {path}: unknown pass {pass_name!r}; passes are {', '.join(PASSES)}")
        declared = {p.name: p for p in PASSES[pass_name].params}
        for param, value in mapping(params, f"search space {path}: pass {pass_name}").items():
            if param not in declared:
                known = ", ".join(declared)
                raise UserInputError(f"search space {path}: pass {pass_name!r} has no parameter {param!r} ({known})")
            dims.append(_dimension(path, pass_name, declared[param], value))
    target = dict(mapping(data.get("target"), f"search space {path}: target"))
    evaluation = _evaluation(path, data.get("evaluation"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    fidelity = _fidelity(path, data.get("fidelity"), dims)
    elastic = data.get("elastic") or {}
    allowed = {"steps", "max_tokens", "lr", "warmup_steps", "random_structures", "checkpoint_every", "seed"}
    if not isinstance(elastic, dict) or set(elastic) - allowed:
        raise UserInputError(f"search space {path}: elastic takes {', '.join(sorted(allowed))}")
    start = _start(path, data.get("start"), dims, students)
    return SearchSpace(path.stem, tuple(dims), target, evaluation, students, digest, fidelity, elastic, start)


def _evaluation(path: Path, value: Any) -> dict[str, Any]:
    """How trials are scored: dev_sentences (the first N dev sentences) is the one setting."""
    evaluation = dict(mapping(value, f"search space {path}: evaluation"))
    unknown = sorted(set(evaluation) - {"dev_sentences"})
    if unknown:
        raise UserInputError(f"search space {path}: evaluation has no setting {unknown[0]!r} (dev_sentences)")
    if evaluation.get("dev_sentences") is not None:
        integer(evaluation["dev_sentences"], f"search space {path}: evaluation.dev_sentences")
    return evaluation


def _start(path: Path, value: Any, dims: list[Dimension], students: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """Each entry: the study's parameter names (`student`, `pass.param`, `precision.dtype.<runtime>` as trials.csv
    shows them) with values as the space lists them; checked against the space here, so a typo is one clear line."""
    where = f"search space {path}: start"
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(e, dict) and e for e in value):
        raise UserInputError(f"{where} must be a list of {{parameter: value}} mappings, e.g. [{{student: teacher}}]")
    searched = {d.name: d for d in dims if d.kind != "fixed"}
    for entry in value:
        for key, chosen in entry.items():
            if key == "student":
                if chosen not in students:
                    raise UserInputError(f"{where}: student {chosen!r} is not one the space offers ({students})")
                continue
            dim = searched.get(key) or searched.get(".".join(str(key).split(".")[:2]))
            if dim is None:
                raise UserInputError(f"{where}: {key!r} is not a searched parameter ({', '.join(searched)})")
            listed = dim.kind in ("choice", "ordered")
            if (listed and chosen not in dim.values) or (
                not listed and chosen != TEACHER and not _in_range(dim, chosen)
            ):
                raise UserInputError(f"{where}: {key} = {chosen!r} is outside the space ({dim.values})")
    return tuple(dict(e) for e in value)


def _in_range(dim: Dimension, value: Any) -> bool:
    low, high = dim.values
    return isinstance(value, int | float) and (low == TEACHER or value >= low) and (high == TEACHER or value <= high)


def start_params(space: SearchSpace, teacher_layers: dict[str, int]) -> list[dict[str, Any]]:
    """The `start:` entries as optuna's trial parameters: an ordered value as its index, `teacher` as the count."""
    found = []
    for entry in space.start:
        params = {}
        for key, value in entry.items():
            dim = space.dimension(*str(key).split(".")[:2]) if key != "student" else None
            if dim is not None and dim.kind == "ordered":
                value = dim.values.index(value)
            elif dim is not None and dim.kind == "int":
                value = _bound(dim, value, teacher_layers)
            params[key] = value
        found.append(params)
    return found


def _fidelity(path: Path, value: Any, dims: list[Dimension]) -> Fidelity | None:
    if value is None:
        return None
    where = f"search space {path}: fidelity"
    if not isinstance(value, dict) or set(value) - {"rungs", "eta"} or "rungs" not in value:
        raise UserInputError(f"{where} must be {{rungs: [steps, ...], eta: 4}}")
    rungs, eta = value["rungs"], value.get("eta", 4)
    if (
        not isinstance(rungs, list)
        or not rungs
        or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rungs)
        or rungs != sorted(set(rungs))
    ):
        raise UserInputError(f"{where}.rungs must be increasing step counts (0 first: untrained), e.g. [0, 200, 800]")
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise UserInputError(f"{where}.eta must be an integer of at least 2 (the best 1/eta of a rung go on)")
    if any(d.name in ("distill.steps", "distill.schedule") for d in dims):
        raise UserInputError(f"{where} sets the training budgets: remove distill.steps and distill.schedule")
    return Fidelity(tuple(rungs), eta)


def at_rung(recipe: Recipe, fidelity: Fidelity | None, rung: int) -> Recipe:
    """The recipe of a student trained to a rung: its distillation on the wsd schedule, for the rung's steps."""
    distill = recipe.get("distill")
    if fidelity is None or distill is None:
        return recipe
    params = {**distill.as_dict(), "steps": fidelity.rungs[rung], "schedule": "wsd"}
    passes = tuple(PassConfig.make("distill", params) if p.name == "distill" else p for p in recipe.passes)
    return Recipe(passes, recipe.seed, task=recipe.task)


def _dimension(path: Path, pass_name: str, param: Param, value: Any) -> Dimension:
    where = f"search space {path}: {pass_name}.{param.name}"
    if not isinstance(value, dict):
        _check(where, param, value)
        return Dimension(pass_name, param.name, "fixed", (value,))
    kinds = [k for k in KINDS if k in value]
    extra = sorted(set(value) - set(KINDS) - {"step", "log"})
    if len(kinds) != 1 or extra:
        raise UserInputError(f"{where} must be a value or one of {{int|float: [low, high]}}, {{choice|ordered: [...]}}")
    kind, options = kinds[0], value[kinds[0]]
    if not isinstance(options, list) or not options:
        raise UserInputError(f"{where}: {kind} needs a non-empty list")
    if kind in ("int", "float"):
        if len(options) != 2:
            raise UserInputError(f"{where}: {kind} needs [low, high]")
        if param.kind != kind:
            raise UserInputError(f"{where} is a {param.kind} parameter, not {kind}")
        low, high = options
        for bound in (low, high):
            if bound != TEACHER:
                _check(where, param, bound)
        if TEACHER not in (low, high) and low > high:
            raise UserInputError(f"{where}: low {low} is above high {high}")
        step, log = value.get("step"), bool(value.get("log", False))
        if log and (step is not None or (low != TEACHER and low <= 0)):
            raise UserInputError(f"{where}: a log scale needs a positive low bound and no step")
        return Dimension(pass_name, param.name, kind, (low, high), step, log)
    for option in options:
        _check(where, param, option)
    if len(set(map(repr, options))) != len(options):
        raise UserInputError(f"{where}: {kind} lists a value twice")
    return Dimension(pass_name, param.name, kind, tuple(options))


def _check(where: str, param: Param, value: Any) -> None:
    try:
        param.validate("", value)
    except UserInputError:
        raise UserInputError(f"{where} = {value!r} is outside what the pass accepts ({param.allowed()})") from None


def suggest_recipe(
    trial: optuna.Trial,
    space: SearchSpace,
    teacher_layers: dict[str, int],
    device: str,
    family: str,
    seed: int = 0,
    task: Task | None = None,
) -> Recipe:
    """Define-by-run: each registered pass, in stage order, asks for the parameters that matter given the choices
    made before it (autocompress.passes.base.Pass: wanted, suggest, constrain, included)."""
    student = space.students[0] if len(space.students) == 1 else trial.suggest_categorical("student", space.students)
    info = SpaceInfo(teacher_layers, device, family, student, fidelity=space.fidelity is not None)
    chosen: Choices = {p.name: {} for p in PASSES.values()}

    def ask(pass_name: str, param: str, options: tuple[Any, ...] | None = None, suffix: str = "") -> Any:
        dim = space.dimension(pass_name, param)
        if dim is None:
            return None
        allowed = _allowed(space, dim, options) if options is not None else None
        chosen[pass_name][param] = _suggest(trial, dim, teacher_layers, allowed, suffix)
        return chosen[pass_name][param]

    passes = in_stage_order()
    for pass_ in passes:
        if pass_.wanted(chosen, info):
            pass_.suggest(ask, chosen, info)
            pass_.constrain(chosen, info)
    for pass_ in passes:  # rules between passes, now that every pass has chosen (heads for a CTranslate2 runtime)
        pass_.constrain(chosen, info)
    configs = []
    for pass_ in passes:
        params = {k: v for k, v in chosen[pass_.name].items() if v is not None}
        if pass_.wanted(chosen, info) and pass_.included(params, chosen, info):
            configs.append((pass_.name, params))
    return Recipe.make(configs, seed=seed, task=task)


def _allowed(space: SearchSpace, dim: Dimension, possible: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values of a listed parameter that this model and target can take."""
    listed = dim.values if dim.kind in ("choice", "ordered", "fixed") else possible
    allowed = tuple(v for v in listed if v in possible)
    if not allowed:
        raise UserInputError(
            f"search space {space.name}: {dim.name} allows {list(listed)}, none of which this model and target can "
            f"run ({', '.join(map(str, possible))}): add one of those"
        )
    return allowed


def _suggest(
    trial: optuna.Trial,
    dim: Dimension,
    teacher_layers: dict[str, int],
    options: tuple[Any, ...] | None = None,
    suffix: str = "",
) -> Any:
    name = f"{dim.name}.{suffix}" if suffix else dim.name
    values = options if options is not None and dim.kind in ("choice", "ordered", "fixed") else dim.values
    if dim.kind == "fixed":
        return values[0]
    if dim.kind == "choice":
        return trial.suggest_categorical(name, list(values))
    if dim.kind == "ordered":
        return values[trial.suggest_int(name, 0, len(values) - 1)]
    low, high = (_bound(dim, b, teacher_layers) for b in dim.values)
    if dim.kind == "int":
        return trial.suggest_int(name, int(low), int(high), step=int(dim.step or 1), log=dim.log)
    return trial.suggest_float(name, float(low), float(high), step=dim.step, log=dim.log)


def _bound(dim: Dimension, bound: Any, teacher_layers: dict[str, int]) -> Any:
    """Layer counts are capped at the teacher's ('teacher' is its count)."""
    stack = dim.param.removesuffix("_layers")
    if stack not in teacher_layers:
        return bound
    return teacher_layers[stack] if bound == TEACHER else min(bound, teacher_layers[stack])


def teacher_artifacts(space: SearchSpace) -> tuple[str, ...]:
    """What a space's trials will ask of the teacher (each pass's `needs`, given the values the space allows its
    parameters), in the order they are built: what a search prepares before its trials. A space of the teacher's
    weights alone trains no student, so only its artifact passes ask."""
    from autocompress.teacher.prepare import ARTIFACTS

    students = "pruned" in space.students
    found: set[str] = set()
    for name, chosen in PASSES.items():
        values = {d.param: d.values for d in space.dimensions if d.pass_name == name}
        if values and (students or chosen.stage == "artifact"):
            found |= set(chosen.needs(values))
    return tuple(artifact for artifact in ARTIFACTS if artifact in found)
