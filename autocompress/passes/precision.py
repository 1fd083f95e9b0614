"""Precision: the artifact stage, the runtime and numeric format of the deployed model.

onnxruntime: the student's fp32 ONNX export, every graph converted with onnxruntime's own quantizers. ctranslate2:
one conversion of the student at the CTranslate2 quantization that matches the dtype (Marian students).

int8: dynamic quantization (weights int8 ahead of time, activations per call), MatMul only or also the embedding
Gather, per-tensor or per-channel. int8_static: QDQ with activation ranges calibrated on real decoder traffic (the
decoder-with-past included). int4: weight-only MatMulNBits with a block size and an accuracy level (the precision of
the activations in the kernel: 4 is int8). fp16: float16 weights and compute (CUDA). Which precision wins is measured,
never assumed: on the CPU of the design notes static int8 and fp16 were slower than fp32.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.export.manifest import Manifest, update_manifest
from autocompress.passes.base import ArtifactBuild, Choices, Param, Pass, RecipeError, SpaceInfo

if TYPE_CHECKING:
    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

RUNTIMES = ("onnxruntime", "ctranslate2")
# The devices each runtime runs each precision on. onnxruntime's int8 kernels are CPU kernels; fp16 and bf16 are CUDA
# formats (fp16 in onnxruntime on CPU falls back to casts and was slower than fp32, design notes).
VALID = {
    "onnxruntime": {
        "fp32": ("cpu", "cuda"),
        "fp16": ("cuda",),
        "int8": ("cpu",),
        "int8_static": ("cpu",),
        "int4": ("cpu", "cuda"),
    },
    "ctranslate2": {
        "fp32": ("cpu", "cuda"),
        "fp16": ("cuda",),
        "bf16": ("cuda",),
        "int8": ("cpu", "cuda"),
        "int16": ("cpu",),
    },
}
CT2_QUANTIZATION = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8", "int16": "int16"}
PARAMS = (
    Param("runtime", "categorical", "onnxruntime", "what runs the artifact", choices=RUNTIMES),
    Param(
        "dtype",
        "categorical",
        "fp32",
        "numeric format of the artifact (which ones a runtime and device accept: VALID)",
        choices=("fp32", "fp16", "bf16", "int8", "int8_static", "int16", "int4"),
    ),
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
CALIBRATION_SENTENCES = 64


class Precision(Pass):
    name = "precision"
    stage = "artifact"
    params = PARAMS
    always = True

    def is_noop(self, params: dict[str, Any]) -> bool:
        return False

    def options(self, param: Param, chosen: Choices, space: SpaceInfo) -> tuple[tuple[Any, ...] | None, str]:
        if param.name == "runtime":  # the CTranslate2 export takes Marian models (autocompress.export.ctranslate2)
            return (RUNTIMES if space.family == "marian" else ("onnxruntime",)), ""
        if param.name == "dtype":  # each runtime its own dtypes on the target: one Optuna parameter per runtime
            runtime = chosen[self.name].get("runtime", "onnxruntime")
            return tuple(valid_dtypes(runtime, space.device)), runtime
        return None, ""

    def check_target(self, config: PassConfig, device: str) -> None:
        check_target(config, device)

    def apply(self, subject: ArtifactBuild, config: PassConfig, ctx: PassContext | None) -> None:
        if config["runtime"] == "ctranslate2":
            from autocompress.export.ctranslate2 import export_ctranslate2

            quantization = CT2_QUANTIZATION[config["dtype"]]
            export_ctranslate2(subject.student, subject.tokenizer, subject.out, quantization, subject.recipe.task)
            return
        source, readers = subject.onnx_fp32(), None
        if config["dtype"] == "int8_static":
            from autocompress.runtime.calibration import calibration_readers

            readers = calibration_readers(source, list(subject.calibration[:CALIBRATION_SENTENCES]))
        apply_artifact(source, subject.out, config, readers)


@functools.cache
def ct2_compute_types(device: str) -> frozenset[str] | None:
    """What CTranslate2 runs natively on this machine's device (int16 needs an Intel CPU with MKL), or None where
    it cannot tell (no such device here: the table above decides, and the worker asks again where it runs).
    Asked, not assumed: given a type the device lacks, CTranslate2 silently runs another one."""
    import ctranslate2

    try:
        return frozenset(ctranslate2.get_supported_compute_types(device))
    except (RuntimeError, ValueError):
        return None


def valid_dtypes(runtime: str, device: str) -> list[str]:
    return [dtype for dtype in VALID[runtime] if _runs(runtime, dtype, device)]


def _runs(runtime: str, dtype: str, device: str) -> bool:
    if device not in VALID[runtime].get(dtype, ()):
        return False
    native = ct2_compute_types(device) if runtime == "ctranslate2" else None
    return native is None or CT2_QUANTIZATION[dtype] in native


def check_target(config: PassConfig, device: str) -> None:
    """Refuse, before any work, a precision the runtime cannot run on the target."""
    runtime, dtype = config["runtime"], config["dtype"]
    valid = VALID[runtime].get(dtype, ())
    if device in valid and not _runs(runtime, dtype, device):
        native = ", ".join(sorted(ct2_compute_types(device) or ()))
        raise RecipeError(
            f"pass 'precision' dtype {dtype!r}: CTranslate2 cannot run it on this {device} (it runs {native}); "
            f"choose one of {', '.join(repr(d) for d in valid_dtypes(runtime, device))}"
        )
    if device not in valid:
        where = f"it runs on {' and '.join(valid)}" if valid else f"{runtime} does not run it"
        raise RecipeError(
            f"pass 'precision' dtype {dtype!r} is not valid with {runtime} for a {device} target: {where}; "
            f"choose one of {', '.join(repr(d) for d in valid_dtypes(runtime, device))}"
        )


def apply_artifact(source: Path, target: Path, config: PassConfig, calibration: Any = None) -> Path:
    """Copy the artifact at source to target with every graph converted; artifact.json records the precision."""
    dtype = config["dtype"]
    if dtype == "int8_static" and calibration is None:
        raise ValueError("int8_static needs calibration feeds (see autocompress.runtime.calibration)")
    shutil.copytree(source, target)
    for graph, file in Manifest.read(source).files.items():
        src, dst = source / file, target / file
        if dtype == "int8":
            _int8_dynamic(src, dst, config)
        elif dtype == "int8_static":
            _int8_static(src, dst, config, calibration[graph])
        elif dtype == "int4":
            _int4(src, dst, config)
        elif dtype == "fp16":
            _fp16(src, dst)
    update_manifest(target, precision=dict(config.params))
    return target


def _int8_dynamic(src: Path, dst: Path, config: PassConfig) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Gather"] if config["gather"] else ["MatMul"]
    quantize_dynamic(src, dst, op_types_to_quantize=ops, per_channel=config["per_channel"], weight_type=QuantType.QInt8)


def _int8_static(src: Path, dst: Path, config: PassConfig, reader: Any) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        src,
        dst,
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=config["per_channel"],
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


def _int4(src: Path, dst: Path, config: PassConfig) -> None:
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line a node
    quantizer = MatMulNBitsQuantizer(
        onnx.load(src), block_size=config["block_size"], is_symmetric=True, accuracy_level=config["accuracy_level"]
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst))


def _fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # Inputs and outputs stay fp32 so that one runtime loop serves every precision.
    onnx.save(convert_float_to_float16(onnx.load(src), keep_io_types=True), dst)
