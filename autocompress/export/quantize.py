"""An ONNX artifact converted to another numeric format, with onnxruntime's own quantizers: int8 dynamic (weights
ahead of time, activations per call), int8 static (QDQ, calibrated), int4 weight-only (MatMulNBits), fp16."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from autocompress.manifest import Manifest, update_manifest

DEFAULTS = {"per_channel": False, "gather": False, "block_size": 32, "accuracy_level": 4}


def quantize_onnx(source: Path, target: Path, precision: dict[str, Any], calibration: Any = None) -> Path:
    """Copy the ONNX artifact at source to target with every graph converted to `precision` (the precision pass's
    parameters: dtype, and per_channel, gather, block_size, accuracy_level where they apply, else onnxruntime's
    defaults); artifact.json records it. int8_static needs calibration feeds per graph (runtime.calibration)."""
    options = {**DEFAULTS, **precision}
    dtype = options["dtype"]
    if dtype == "int8_static" and calibration is None:
        raise ValueError("int8_static needs calibration feeds (see autocompress.runtime.calibration)")
    shutil.copytree(source, target)
    for graph, file in Manifest.read(source).files.items():
        src, dst = source / file, target / file
        if dtype == "int8":
            _int8_dynamic(src, dst, options)
        elif dtype == "int8_static":
            _int8_static(src, dst, options, calibration[graph])
        elif dtype == "int4":
            _int4(src, dst, options)
        elif dtype == "fp16":
            _fp16(src, dst)
    update_manifest(target, precision=dict(sorted({"runtime": "onnxruntime", **options}.items())))
    return target


def _int8_dynamic(src: Path, dst: Path, config: dict[str, Any]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Gather"] if config["gather"] else ["MatMul"]
    quantize_dynamic(src, dst, op_types_to_quantize=ops, per_channel=config["per_channel"], weight_type=QuantType.QInt8)


def _int8_static(src: Path, dst: Path, config: dict[str, Any], reader: Any) -> None:
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


def _int4(src: Path, dst: Path, config: dict[str, Any]) -> None:
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
