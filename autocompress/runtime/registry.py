"""The runtimes an artifact is built for and measured in, one entry each: what a new runtime declares.

A runtime names the precisions it runs and on which devices, how a trained student becomes its artifact, how an
artifact is opened for translating and timing (the surface of runtime/base.py), which model families its export
takes, which precisions the device runs natively (where it can tell), and which precisions translate a sentence
differently depending on the batch it is decoded in. The precision pass, the artifact builder, the evaluators and the
report read this table; a new runtime is one file that calls `register_runtime` (see tests/test_runtimes.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.errors import UserInputError
from autocompress.manifest import Manifest
from autocompress.task import Task

if TYPE_CHECKING:
    from autocompress.runtime import Seq2SeqRuntime

CALIBRATION_SENTENCES = 64
CPU_CUDA = ("cpu", "cuda")  # source sentences whose decoder traffic calibrates static int8


@dataclass(frozen=True)
class BuildRequest:
    """What building an artifact starts from: the trained student, and where and at which precision to write it."""

    student: Any  # transformers PreTrainedModel
    tokenizer: Any
    out: Path
    precision: Mapping[str, Any]  # the precision pass's parameters: runtime, dtype, and the runtime's own options
    task: Task | None
    onnx_fp32: Callable[[], Path]  # the student's fp32 ONNX export, made (and cached) on first call
    calibration: Sequence[str] = ()  # source sentences, for calibrated quantization


@dataclass(frozen=True)
class Runtime:
    name: str
    short: str  # its name in recipe descriptions
    dtypes: Mapping[str, tuple[str, ...]]  # precision → the devices it runs it on
    build: Callable[[BuildRequest], None]  # writes the artifact into request.out (created)
    open: Callable[[Path, int | None, Sequence[str]], Seq2SeqRuntime]  # directory, threads (None: default), providers
    families: tuple[str, ...] | None = None  # the model families its export takes; None: every family
    native: Callable[[str], frozenset[str] | None] | None = None  # the precisions a device runs natively, if known
    batch_dependent: tuple[str, ...] = ()  # precisions whose translation of a sentence depends on its batch

    def runs(self, dtype: str, device: str) -> bool:
        if device not in self.dtypes.get(dtype, ()):
            return False
        native = self.native(device) if self.native is not None else None
        return native is None or dtype in native

    def valid_dtypes(self, device: str) -> list[str]:
        return [dtype for dtype in self.dtypes if self.runs(dtype, device)]

    def takes(self, family: str) -> bool:
        return self.families is None or family in self.families


RUNTIMES: dict[str, Runtime] = {}


def register_runtime(runtime: Runtime) -> Runtime:
    RUNTIMES[runtime.name] = runtime
    return runtime


def unregister_runtime(name: str) -> None:
    RUNTIMES.pop(name, None)


def runtime_named(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise UserInputError(f"runtime {name!r} is unknown: registered are {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def open_artifact(
    directory: Path, threads: int | None = None, providers: Sequence[str] = ("CPUExecutionProvider",)
) -> Seq2SeqRuntime:
    """The artifact opened in the runtime its manifest names."""
    return runtime_named(Manifest.read(directory).runtime).open(directory, threads, providers)


# onnxruntime: the student's fp32 ONNX export, each graph converted by onnxruntime's own quantizers (export/quantize).
# int8 and int4 quantize activations per call with one scale per tensor: a sentence's translation depends on its batch.
def _onnx_build(request: BuildRequest) -> None:
    from autocompress.export.quantize import quantize_onnx

    source, readers = request.onnx_fp32(), None
    if request.precision["dtype"] == "int8_static":
        from autocompress.runtime.calibration import calibration_readers

        readers = calibration_readers(source, list(request.calibration[:CALIBRATION_SENTENCES]))
    quantize_onnx(source, request.out, dict(request.precision), readers)


def _onnx_open(directory: Path, threads: int | None, providers: Sequence[str]) -> Seq2SeqRuntime:
    from autocompress.runtime.onnx_loop import OnnxSeq2Seq

    return OnnxSeq2Seq(directory, threads=threads, providers=providers)


# CTranslate2: one conversion of the student at the quantization that matches the dtype (Marian students: MBart/M2M100
# decode from a target-language prefix and T5 shares one relative-position table, which its converter lacks).
def _ct2_build(request: BuildRequest) -> None:
    from autocompress.export.ctranslate2 import QUANTIZATION_OF, export_ctranslate2

    quantization = QUANTIZATION_OF[request.precision["dtype"]]
    export_ctranslate2(request.student, request.tokenizer, request.out, quantization, request.task)


def _ct2_open(directory: Path, threads: int | None, providers: Sequence[str]) -> Seq2SeqRuntime:
    from autocompress.runtime.ct2_loop import CT2Seq2Seq

    return CT2Seq2Seq(directory, threads=threads or 0, device="cuda" if "CUDAExecutionProvider" in providers else "cpu")


@functools.cache
def _ct2_native(device: str) -> frozenset[str] | None:
    """What CTranslate2 runs natively on this machine's device (int16 needs an Intel CPU with MKL), or None where it
    cannot tell (no such device here: the table decides, and the worker asks again where it runs). Asked, not
    assumed: given a type the device lacks, CTranslate2 silently runs another one."""
    import ctranslate2

    from autocompress.export.ctranslate2 import DTYPE_OF

    try:
        return frozenset(DTYPE_OF.get(t, t) for t in ctranslate2.get_supported_compute_types(device))
    except (RuntimeError, ValueError):
        return None


# The devices each runtime runs each precision on. onnxruntime's int8 kernels are CPU kernels; fp16 and bf16 are CUDA
# formats (fp16 in onnxruntime on CPU falls back to casts and was slower than fp32, design notes).
register_runtime(
    Runtime(
        "onnxruntime",
        "ort",
        {
            "fp32": ("cpu", "cuda"),
            "fp16": ("cuda",),
            "int8": ("cpu",),
            "int8_static": ("cpu",),
            "int4": ("cpu", "cuda"),
        },
        _onnx_build,
        _onnx_open,
        batch_dependent=("int8", "int4"),
    )
)
register_runtime(
    Runtime(
        "ctranslate2",
        "ct2",
        {"fp32": ("cpu", "cuda"), "fp16": ("cuda",), "bf16": ("cuda",), "int8": ("cpu", "cuda"), "int16": ("cpu",)},
        _ct2_build,
        _ct2_open,
        families=("marian",),
        native=_ct2_native,
    )
)


from autocompress import plugins  # noqa: E402  (after the built-in entries: a plugin may replace one)

plugins.load()
