"""Precision: the artifact stage, the runtime and numeric format of the deployed model.

Which runtimes there are, which precisions each runs on which device and how each builds its artifact is the runtime
registry's (runtime/registry.py): onnxruntime converts the student's fp32 ONNX export with its own quantizers,
CTranslate2 converts the student at the matching quantization (Marian students).

int8: dynamic quantization (weights int8 ahead of time, activations per call), MatMul only or also the embedding
Gather, per-tensor or per-channel. int8_static: QDQ with activation ranges calibrated on real decoder traffic (the
decoder-with-past included). int4: weight-only MatMulNBits with a block size and an accuracy level (the precision of
the activations in the kernel: 4 is int8). fp16: float16 weights and compute (CUDA). Which precision wins is measured,
never assumed: on the CPU of the design notes static int8 and fp16 were slower than fp32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autocompress.passes.base import ArtifactBuild, ArtifactPass, Choices, Param, RecipeError, SpaceInfo, TeacherLayers
from autocompress.runtime.registry import RUNTIMES, BuildRequest

if TYPE_CHECKING:
    from autocompress.passes.recipe import PassConfig

OPTIONS = (
    Param(
        "per_channel",
        "categorical",
        False,
        "onnxruntime int8: one scale per output channel instead of per tensor",
        choices=(False, True),
        when=(("runtime", ("onnxruntime",)), ("dtype", ("int8", "int8_static"))),
    ),
    Param(
        "gather",
        "categorical",
        False,
        "onnxruntime int8: quantize the embedding lookups (Gather) too",
        choices=(False, True),
        when=(("runtime", ("onnxruntime",)), ("dtype", ("int8",))),
    ),
    Param(
        "block_size",
        "categorical",
        32,
        "int4: weights per quantization block",
        choices=(16, 32, 64, 128, 256),
        when=(("runtime", ("onnxruntime",)), ("dtype", ("int4",))),
    ),
    Param(
        "accuracy_level",
        "categorical",
        4,
        "int4: kernel activation precision (0 default, 1 fp32, 2 fp16, 3 bf16, 4 int8)",
        choices=(0, 1, 2, 3, 4),
        when=(("runtime", ("onnxruntime",)), ("dtype", ("int4",))),
    ),
)


def runtime_params() -> tuple[Param, ...]:
    """The runtime and dtype parameters, over the runtimes registered now (a runtime registered later is offered)."""
    dtypes = tuple(dict.fromkeys(dtype for runtime in RUNTIMES.values() for dtype in runtime.dtypes))
    return (
        Param("runtime", "categorical", "onnxruntime", "what runs the artifact", choices=tuple(RUNTIMES)),
        Param(
            "dtype",
            "categorical",
            "fp32",
            "numeric format of the artifact (which ones a runtime and device accept: runtime/registry.py)",
            choices=dtypes,
        ),
    )


class Precision(ArtifactPass):
    name = "precision"
    always = True

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        return (*runtime_params(), *OPTIONS)

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        runtime = RUNTIMES.get(params.get("runtime", "onnxruntime"))
        return f"{runtime.short if runtime else '?'} {params.get('dtype', 'fp32')}"

    def is_noop(self, params: dict[str, Any]) -> bool:
        return False

    def options(self, param: Param, chosen: Choices, space: SpaceInfo) -> tuple[tuple[Any, ...] | None, str]:
        if param.name == "runtime":  # the runtimes whose export takes this model's family
            return tuple(name for name, runtime in RUNTIMES.items() if runtime.takes(space.family)), ""
        if param.name == "dtype":  # each runtime its own dtypes on the target: one Optuna parameter per runtime
            runtime = chosen[self.name].get("runtime", "onnxruntime")
            return tuple(RUNTIMES[runtime].valid_dtypes(space.device)), runtime
        return None, ""

    def check_target(self, config: PassConfig, device: str) -> None:
        check_target(config, device)

    def apply(self, subject: ArtifactBuild, config: PassConfig) -> None:
        request = BuildRequest(
            subject.student,
            subject.tokenizer,
            subject.out,
            dict(config.params),
            subject.recipe.task,
            subject.onnx_fp32,
            subject.calibration,
        )
        RUNTIMES[config["runtime"]].build(request)


def check_target(config: PassConfig, device: str) -> None:
    """Refuse, before any work, a precision the runtime cannot run on the target."""
    runtime, dtype = RUNTIMES[config["runtime"]], config["dtype"]
    valid = runtime.dtypes.get(dtype, ())
    choose = f"choose one of {', '.join(repr(d) for d in runtime.valid_dtypes(device))}"
    if device in valid and not runtime.runs(dtype, device):
        native = ", ".join(sorted(runtime.native(device) or ())) if runtime.native is not None else "?"
        raise RecipeError(
            f"pass 'precision' dtype {dtype!r}: {runtime.name} cannot run it on this {device} (it runs {native}); "
            + choose
        )
    if device not in valid:
        where = f"it runs on {' and '.join(valid)}" if valid else f"{runtime.name} does not run it"
        raise RecipeError(
            f"pass 'precision' dtype {dtype!r} is not valid with {runtime.name} for a {device} target: "
            f"{where}; {choose}"
        )
