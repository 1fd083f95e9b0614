"""One trial from start to end, in whichever process runs it: recipe → student → artifact → measurements.

The flow is one way: the driver sends a TrialJob (plain data), the worker returns a TrialOutcome (plain data) or
raises; it never touches the study. A process keeps its loaded teachers between trials (Ray reuses workers), and
students and fp32 exports are cached in the study directory, so the precisions of one student share its training.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.task import Task

# The cores a local trial may use: Ray starts its workers off the measured cores (RayExecutor), trials widen back.
TRIAL_CORES_ENV = "AUTOCOMPRESS_TRIAL_CORES"
FAULTS_ENV = "AUTOCOMPRESS_FAULTS"  # fault injection for tests of the driver, e.g. "2:raise,3:exit-once,4:hang"


@dataclass(frozen=True)
class TrialJob:
    number: int
    recipe: dict[str, Any]
    model: str
    train: str  # corpus specs (autocompress.data.load_corpus)
    dev: str
    dev_sentences: int | None
    target: dict[str, Any]
    study_dir: str
    threads: int  # torch threads for training (decoding for BLEU runs at the target's threads, at most these)
    train_device: str = "cpu"
    elastic: dict[str, Any] | None = None  # ElasticSettings of the space, when its students may start from one
    # the teacher's quiet timing (evaluate.latency.LatencyReference): a candidate plainly slower is cut short
    latency_reference: dict[str, Any] | None = None


@dataclass
class TrialOutcome:
    values: dict[str, float]
    measurements: dict[str, dict[str, Any]]
    artifact: str
    phases: dict[str, float]
    metrics: dict[str, Any]
    worker: dict[str, Any] = field(default_factory=dict)
    cut: dict[str, Any] | None = None  # measuring stopped early: why, and what was seen (values hold what was measured)


_LOADED: dict[tuple[str, ...], Any] = {}


def _context(job: TrialJob, task: Task) -> tuple[Any, Any]:
    """(pass context holding the teacher with the task bound, dev corpus), kept for the life of the worker process."""
    key = (job.model, job.train, job.dev, str(job.dev_sentences), job.train_device, repr(task))
    if key not in _LOADED:
        from autocompress.cache import ArtifactCache
        from autocompress.data import load_corpus
        from autocompress.model.load import load_model
        from autocompress.teacher.context import TeacherContext

        loaded = load_model(job.model, task=task)
        ctx = TeacherContext(
            loaded.model, loaded.tokenizer, load_corpus(job.train), ArtifactCache(), job.train_device, task=loaded.task
        )
        _LOADED[key] = (ctx, load_corpus(job.dev).head(job.dev_sentences))
    ctx = _LOADED[key][0]
    ctx.elastic = None
    if job.elastic is not None:
        from autocompress.teacher.elastic import ElasticSettings

        settings = ElasticSettings.from_dict(job.elastic)
        ctx.elastic = lambda: ctx.elastic_student(settings)
    return _LOADED[key]


@contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = round(phases.get(name, 0.0) + time.perf_counter() - started, 3)


def run_trial(job: TrialJob) -> TrialOutcome:
    import json

    import torch

    from autocompress.cache import ArtifactCache
    from autocompress.evaluate.latency import LatencyReference
    from autocompress.evaluate.objectives import EVALUATORS, EvalInputs
    from autocompress.export.onnx import GRAPH_LAYOUT, export_onnx
    from autocompress.manifest import update_manifest
    from autocompress.measure_lock import background_work
    from autocompress.model.student import load_student, save_student
    from autocompress.passes import PASSES
    from autocompress.passes.base import ModelPass
    from autocompress.passes.build import build_artifact, build_student
    from autocompress.passes.recipe import Recipe
    from autocompress.target import TargetSpec

    phases: dict[str, float] = {}
    started = time.time()
    use_trial_cores()
    _inject_fault(job)
    torch.set_num_threads(job.threads)
    recipe, target = Recipe.from_dict(job.recipe), TargetSpec.from_dict(job.target)
    for config in recipe.passes:
        PASSES[config.name].check_target(config, target.device)
    # Every unit of the trial's work pauses while a measurement runs on the target: on a CUDA target, one on this
    # trial's GPU (a search on a CUDA target never times the CPU, so nothing waits for the CPU's lock there).
    with _phase(phases, "load"), background_work(target.device):
        ctx, dev = _context(job, recipe.task)
    study_cache = ArtifactCache(Path(job.study_dir) / "cache")
    training = Recipe(
        tuple(p for p in recipe.passes if isinstance(PASSES[p.name], ModelPass)), recipe.seed, task=recipe.task
    )
    key = {**ctx.teacher_key, "student": training.id}

    def train(directory: Path) -> None:
        built: dict[str, Any] = {}
        resume, save_state = training_states(Path(job.study_dir), training)
        student = build_student(training, ctx, built, resume, save_state)  # its heavy steps pause for measurements
        with background_work(target.device):
            save_student(student, ctx.tokenizer, directory / "student", {"id": training.id, **training.to_dict()})
        (directory / "build.json").write_text(json.dumps(built, default=str))

    with _phase(phases, "student"):
        entry = study_cache.get_or_build("students", key, train)
        with background_work(target.device):
            student = load_student(entry.path / "student")
    metrics = {"student": json.loads((entry.path / "build.json").read_text()), "student_cached": entry.hit}
    artifact = Path(job.study_dir) / "artifacts" / recipe.id

    def export(directory: Path) -> None:
        with background_work(target.device):
            export_onnx(student, ctx.tokenizer, directory / "onnx", task=ctx.task)

    def onnx_fp32() -> Path:
        """The student's fp32 ONNX, shared by its precisions; built when an artifact pass first asks for it."""
        with _phase(phases, "export"):
            return study_cache.get_or_build("onnx-fp32", {**key, "graphs": GRAPH_LAYOUT}, export).path / "onnx"

    exported_before = phases.get("export", 0.0)
    with _phase(phases, "artifact"):  # the artifact passes: precision's quantization or CTranslate2 conversion
        build_artifact(
            student, ctx.tokenizer, recipe, artifact, onnx_fp32, dev.sources, metrics, ctx, device=target.device
        )
    phases["artifact"] = round(phases["artifact"] - (phases.get("export", 0.0) - exported_before), 3)
    measured: dict[str, Any] = {}
    reference = LatencyReference.from_dict(job.latency_reference) if job.latency_reference else None
    inputs = EvalInputs(artifact, dev, target, min(job.threads, target.threads), reference)
    cut: dict[str, Any] | None = None
    for evaluator in sorted(EVALUATORS.values(), key=lambda e: e.order):
        if cut is not None and not evaluator.after_cut:
            continue
        with _phase(phases, evaluator.name), background_work(target.device) if evaluator.background else nullcontext():
            found = evaluator.measure(inputs)
        measured |= found
        cut = cut or next((m.details["cut"] for m in found.values() if "cut" in m.details), None)
    update_manifest(artifact, measurements={name: m.to_dict() for name, m in measured.items()})
    phases["total"] = round(time.time() - started, 3)
    return TrialOutcome(
        values={name: m.value for name, m in measured.items()},
        measurements={name: m.to_dict() for name, m in measured.items()},
        artifact=str(artifact),
        phases=phases,
        metrics=metrics,
        worker={"host": socket.gethostname(), "pid": os.getpid(), "started": started, "ended": time.time()} | _placed(),
        cut=cut,
    )


def _placed() -> dict[str, Any]:
    """Where Ray ran the trial: its node and the GPUs it was given (two nodes may share a host name)."""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # not under Ray: nothing to say
        node = None
    return {"node": node, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}


def run_prepare(job: TrialJob, artifacts: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Build the teacher-derived artifacts the search needs (autocompress.teacher.prepare), with every core."""
    import torch

    from autocompress.passes.recipe import Recipe
    from autocompress.teacher.prepare import prepare

    use_trial_cores()
    torch.set_num_threads(job.threads)
    from autocompress.teacher.elastic import ElasticSettings

    ctx, _dev = _context(job, Recipe.from_dict(job.recipe).task)
    ctx.used = {}
    return prepare(ctx, artifacts, ElasticSettings.from_dict(job.elastic) if job.elastic else None)


def run_probe(job: TrialJob, artifacts: tuple[str, ...], train_tokens: int) -> dict[str, Any]:
    """Time a few units of every phase with every core (autocompress.teacher.probe): {missing: the teacher
    artifacts not built yet, units: seconds per unit}. The teacher's fp32 export it times is the baseline's, cached
    in the study directory for it."""
    import torch

    from autocompress.cache import ArtifactCache
    from autocompress.export.onnx import GRAPH_LAYOUT, export_onnx
    from autocompress.passes.recipe import Recipe
    from autocompress.target import TargetSpec
    from autocompress.teacher.elastic import ElasticSettings
    from autocompress.teacher.prepare import missing
    from autocompress.teacher.probe import time_units

    use_trial_cores()
    torch.set_num_threads(job.threads)
    recipe = Recipe.from_dict(job.recipe)
    ctx, dev = _context(job, recipe.task)
    elastic = ElasticSettings.from_dict(job.elastic) if job.elastic else None
    todo = missing(ctx, artifacts, elastic)
    teacher = {**ctx.teacher_key, "student": Recipe((), recipe.seed, task=recipe.task).id, "graphs": GRAPH_LAYOUT}

    def onnx() -> tuple[Path, float]:
        def export(directory: Path) -> None:
            export_onnx(ctx.teacher, ctx.tokenizer, directory / "onnx", task=ctx.task)

        entry = ArtifactCache(Path(job.study_dir) / "cache").get_or_build("onnx-fp32", teacher, export)
        return entry.path / "onnx", entry.seconds

    target = TargetSpec.from_dict(job.target)
    units = time_units(ctx, dev, target, todo, elastic, train_tokens, onnx)
    return {"missing": list(todo), "units": units}


def probe_here(job: TrialJob, artifacts: tuple[str, ...], train_tokens: int, _stop: Any) -> dict:
    """run_probe in this process (`autocompress plan`), restoring the process's cores and torch threads."""
    import torch

    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    try:
        return run_probe(job, artifacts, train_tokens)
    finally:
        os.sched_setaffinity(0, cores)
        torch.set_num_threads(threads)


def run_comparison(job: TrialJob, artifacts: list[str], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Time the artifacts side by side: `rounds` rounds in ABBA order (the first artifact first, then last), each a
    whole latency measurement on the target; artifact → its values, round by round."""
    from autocompress.data import load_corpus
    from autocompress.evaluate.latency import measure_latency
    from autocompress.target import TargetSpec

    use_trial_cores()
    target = TargetSpec.from_dict(job.target)
    sentences = list(load_corpus(job.dev).head(job.dev_sentences).sources)
    found: dict[str, list[dict[str, float]]] = {artifact: [] for artifact in artifacts}
    for round_ in range(rounds):
        for artifact in artifacts if round_ % 2 == 0 else artifacts[::-1]:
            measured = measure_latency(Path(artifact), sentences, target)
            found[artifact].append({name: m.value for name, m in measured.items()})
    return found


def training_states(study_dir: Path, training: Any) -> tuple[Any, Any]:
    """(the state to continue from, where to save states) for a student trained on the wsd schedule: its states at
    fewer steps, under its lineage (the recipe without the step count), carry over to higher rungs."""
    from autocompress.passes.distill import TrainingState, stable_steps

    distill = training.get("distill")
    if distill is None or distill["schedule"] != "wsd":
        return None, None
    from autocompress.passes import PASSES
    from autocompress.passes.recipe import PassConfig, Recipe

    # what shapes the training: not its step count, nor what is done to the student after it (vocabulary)
    before = ("init", "structure", "sparsity", "train")
    lineage = Recipe(
        tuple(
            PassConfig.make("distill", {**p.as_dict(), "steps": 0}) if p.name == "distill" else p
            for p in training.passes
            if PASSES[p.name].stage in before
        ),
        training.seed,
        task=training.task,
    ).id
    directory = study_dir / "states" / lineage
    target = stable_steps(distill)
    saved = sorted(int(d.name) for d in directory.glob("[0-9]*") if d.name.isdigit() and int(d.name) <= target)
    resume = TrainingState.load(directory / str(saved[-1])) if saved else None

    def save(state: TrainingState) -> None:
        if not (directory / str(state.step)).exists():
            directory.mkdir(parents=True, exist_ok=True)
            state.save(directory / str(state.step))

    return resume, save


def use_trial_cores() -> None:
    """Widen this worker back to every core of the machine (it was started with Ray's restricted affinity)."""
    cores = os.environ.get(TRIAL_CORES_ENV)
    if cores:
        os.sched_setaffinity(0, {int(core) for core in cores.split(",")})


def _inject_fault(job: TrialJob) -> None:
    """Faults for testing the driver's handling: raise, die (once, or every time), or hang."""
    for item in filter(None, os.environ.get(FAULTS_ENV, "").split(",")):
        number, mode = item.split(":")
        if int(number) != job.number:
            continue
        if mode == "raise":
            raise RuntimeError(f"injected failure in trial {job.number}")
        if mode == "exit" or (mode == "exit-once" and not _mark(job, "exit-once")):
            os._exit(17)
        if mode == "hang":
            time.sleep(3600)


def _mark(job: TrialJob, name: str) -> bool:
    """Whether the marker existed; it does afterwards."""
    marker = Path(job.study_dir) / "faults" / f"{job.number}-{name}"
    existed = marker.exists()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return existed
