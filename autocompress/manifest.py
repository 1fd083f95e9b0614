"""artifact.json: what an exported artifact is and how to run it, one typed, versioned schema for every runtime.

Written here and nowhere else (`Manifest.write`); the exporters create it, the precision pass, the artifact builder
and the worker update it (`update_manifest`), and every runtime, evaluator and command reads it (`Manifest.read`).
Free of torch and transformers: the runtimes import it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_FILE = "artifact.json"
MANIFEST_VERSION = 2


@dataclass(frozen=True)
class Manifest:
    runtime: str  # onnxruntime or ctranslate2: which loop runs it
    family: str  # the model_type it was exported from (marian, mbart, m2m_100, t5)
    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    # generate()'s rules for this model, applied by the runtimes at every step: forced_bos_token_id (MBart-50,
    # M2M100/NLLB: the target language), forced_eos_token_id (at the length limit), suppressed_token_ids.
    decoding: dict[str, Any]
    # Attention shapes the loops size their caches with: head_dim, and per layer encoder_heads, self_heads (decoder
    # self-attention), cross_heads. Pruned students differ per layer.
    structure: dict[str, Any]
    # role → file: onnxruntime "encoder", "decoder_cross" and "decoder_step", and once finished
    # (autocompress.export.layout) "decoder_merged" for other loaders; ctranslate2 "model"
    files: dict[str, str]
    precision: dict[str, Any] = field(default_factory=lambda: {"dtype": "fp32"})  # the precision pass's config
    task: dict[str, Any] = field(default_factory=dict)  # autocompress.task.Task.to_dict()
    recipe: dict[str, Any] | None = None
    recipe_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # what building it measured (pass metrics, cache hits)
    measurements: dict[str, Any] = field(default_factory=dict)  # evaluate.Measurement dicts, with signatures
    # A trimmed output vocabulary (autocompress.model.vocabulary): the tokenizer's id of each output id; the ids above
    # (decoder start, eos, pad, decoding rules) are output ids. None: the whole vocabulary.
    target_ids: list[int] | None = None
    # A lexical shortlist (autocompress.passes.shortlist): its settings and file; CTranslate2 reads vmap.txt
    shortlist: dict[str, Any] | None = None
    version: int = MANIFEST_VERSION

    def loop_files(self) -> list[str]:
        """The graph or model files our runtime loops read (a finished onnxruntime artifact also holds the merged
        decoder for other loaders, which they do not read: autocompress.export.layout)."""
        if "decoder_step" in self.files:
            return [self.files[graph] for graph in ("encoder", "decoder_cross", "decoder_step")]
        return list(self.files.values())

    @property
    def dtype(self) -> str:
        return str(self.precision.get("dtype", "fp32"))

    def measured_threads(self) -> int | None:
        """The CPU threads its latency was measured at (read from the measurement's signature, `threads:N`), so a
        command runs it as it was chosen; None: never measured."""
        signature = str(self.measurements.get("latency_p50_ms", {}).get("signature", ""))
        fields = dict(part.split(":", 1) for part in signature.split("|") if ":" in part)
        threads = fields.get("threads", "")
        return int(threads) if threads.isdigit() and int(threads) > 0 else None

    def write(self, directory: Path) -> Path:
        """Written whole or not at all (a temporary file renamed over it): a reader never sees half a manifest."""
        path = Path(directory) / MANIFEST_FILE
        staging = path.with_name(f".{MANIFEST_FILE}.{os.getpid()}")
        staging.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        os.replace(staging, path)
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of an artifact directory; artifacts of version 1 (separate ONNX and CTranslate2 schemas)
        are read too."""
        data = json.loads((Path(directory) / MANIFEST_FILE).read_text())
        if data.get("version") == MANIFEST_VERSION and "runtime" in data:
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        return cls(**_from_version_1(data))


def update_manifest(directory: Path, **changes: Any) -> Manifest:
    manifest = dataclasses.replace(Manifest.read(directory), **changes)
    manifest.write(directory)
    return manifest


def is_artifact(directory: Path) -> bool:
    return (Path(directory) / MANIFEST_FILE).is_file()


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    common = {
        "family": data.get("family", "marian"),
        "decoder_start_token_id": data["decoder_start_token_id"],
        "eos_token_id": data.get("eos_token_id"),
        "pad_token_id": data["pad_token_id"],
        "task": data.get("task") or {},
        "recipe": data.get("recipe"),
        "recipe_id": data.get("recipe_id"),
        "metrics": data.get("metrics") or {},
        "measurements": data.get("measurements") or {},
    }
    if data.get("format") == "autocompress-onnx":
        structure = {"head_dim": data["head_dim"], "self_heads": data["self_heads"], "cross_heads": data["cross_heads"]}
        files = {"encoder": data["encoder"], "decoder": data["decoder"]}
        return {**common, "runtime": "onnxruntime", "decoding": data["decoding"], "structure": structure,
                "files": files, "precision": data.get("precision") or {"dtype": "fp32"}}  # fmt: skip
    decoding = {
        "forced_bos_token_id": None,
        "forced_eos_token_id": data.get("forced_eos_token_id"),
        "suppressed_token_ids": data.get("suppressed_token_ids", []),
    }
    heads = data.get("heads", {})
    structure = {"head_dim": data.get("head_dim"), "encoder_heads": heads.get("encoder"),
                 "self_heads": heads.get("decoder"), "cross_heads": heads.get("decoder")}  # fmt: skip
    dtype = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(data["quantization"], data["quantization"])
    precision = {"runtime": "ctranslate2", "dtype": dtype, "quantization": data["quantization"]}
    return {**common, "runtime": "ctranslate2", "decoding": decoding, "structure": structure,
            "files": {"model": "model.bin"}, "precision": precision}  # fmt: skip
