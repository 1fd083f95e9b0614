"""CTranslate2 export: the second deployment target, for students with one head count per stack.

Marian only for now (see export_ctranslate2). CTranslate2's own Transformers loader builds the spec from the
in-memory student; we then give it the student's head count and per-head size (pruning keeps the teacher's head
size, which CTranslate2 would otherwise derive as d_model / heads). Marian models whose <pad> is not the last
vocabulary entry (the demo's is id 2) keep their whole vocabulary: the stock loader assumes OPUS-MT's layout, where
the last row is an appended <pad>, and drops it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autocompress import arch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

QUANTIZATIONS = ("int8", "int16", "float32", "float16", "int8_float16", "bfloat16")
ARTIFACT_FILE = "artifact.json"


class ExportError(ValueError):
    """This model cannot be written in the requested format (the message says why)."""


def stack_heads(model: PreTrainedModel) -> dict[str, int]:
    """One head count per stack, as CTranslate2 requires, or an ExportError naming the counts found."""
    counts: dict[str, set[int]] = {"encoder": set(), "decoder": set()}
    for block in arch.attention_blocks(model):
        counts["encoder" if block.kind == "encoder_self" else "decoder"].add(block.num_heads)
    uneven = {stack: sorted(found) for stack, found in counts.items() if len(found) != 1}
    if uneven:
        raise ExportError(f"CTranslate2 needs one head count per stack; this student has {uneven}")
    return {stack: found.pop() for stack, found in counts.items()}


def export_ctranslate2(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, quantization: str = "int8"
) -> Path:
    from ctranslate2.converters.converter import Converter

    if quantization not in QUANTIZATIONS:
        raise ExportError(
            f"CTranslate2 quantization {quantization!r} is unknown: use one of {', '.join(QUANTIZATIONS)}"
        )
    if model.config.model_type != "marian":
        # MBart/M2M100 decode from a target-language prefix and T5 shares one relative-position table across
        # layers: both need more than the stock loaders; until then they go to ONNX.
        raise ExportError(f"CTranslate2 export supports Marian models; {model.config.model_type} exports to ONNX")
    heads = stack_heads(model)
    head_dim = arch.attention_blocks(model)[0].head_dim
    student = copy.deepcopy(model).float().eval()
    student.config.encoder_attention_heads = heads["encoder"]
    student.config.decoder_attention_heads = heads["decoder"]

    class InMemory(Converter):
        def _load(self) -> Any:
            spec = _loader(student)(student, tokenizer)
            for module in _attention_specs(spec):
                # Specs accept head_dim only in their constructor, which the stock loaders call without it;
                # FrozenAttr refuses new attributes after construction, so go around it for this one.
                object.__setattr__(module, "head_dim", np.dtype("int32").type(head_dim))
            return spec

    InMemory().convert(str(out_dir), quantization=quantization, force=True)
    tokenizer.save_pretrained(out_dir)
    manifest = {
        "format": "ctranslate2",
        "quantization": quantization,
        "heads": heads,
        "head_dim": head_dim,
        "decoder_start_token_id": model.config.decoder_start_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "family": model.config.model_type,
    }
    (out_dir / ARTIFACT_FILE).write_text(json.dumps(manifest, indent=2))
    return out_dir


def _loader(model: PreTrainedModel) -> Any:
    from ctranslate2.converters import transformers as ct2

    name = type(model.config).__name__
    if name == "MarianConfig" and model.config.pad_token_id != model.config.vocab_size - 1:

        class WholeVocabularyMarianLoader(ct2.MarianMTLoader):
            def get_model_spec(self, model: Any) -> Any:
                model.config.normalize_before = False
                model.config.normalize_embedding = False
                return ct2.BartLoader.get_model_spec(self, model)

            def get_vocabulary(self, model: Any, tokenizer: Any) -> list[str]:
                return ct2.BartLoader.get_vocabulary(self, model, tokenizer)

            # The decoder starts from <pad>'s own (trained, non-zero) embedding, not from a zero vector as in
            # OPUS-MT models converted from Marian.
            def set_config(self, config: Any, model: Any, tokenizer: Any) -> None:
                super().set_config(config, model, tokenizer)
                config.decoder_start_token = tokenizer.pad_token

            def set_decoder(self, spec: Any, decoder: Any) -> None:
                ct2.BartLoader.set_decoder(self, spec, decoder)

        return WholeVocabularyMarianLoader()
    loader = ct2._MODEL_LOADERS.get(name)
    if loader is None:
        raise ExportError(f"CTranslate2 has no converter for {name}")
    return loader


def _attention_specs(spec: Any) -> list[Any]:
    found = []
    for stack_name in ("encoder", "decoder"):
        for layer in getattr(getattr(spec, stack_name, None), "layer", []):
            found += [getattr(layer, attr) for attr in ("self_attention", "attention") if hasattr(layer, attr)]
    return found
