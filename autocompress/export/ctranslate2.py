"""CTranslate2 export: the second deployment target, for Marian students with one head count per stack.

The spec is built here from the in-memory student with CTranslate2's own public pieces (the Transformer encoder and
decoder specs, its BART loader's layer setters), not with its stock Marian loader, which is written for OPUS-MT
models converted from Marian: it drops the last vocabulary row (OPUS-MT's appended <pad>) and starts the decoder
from a zero vector. A model trained or fine-tuned in transformers starts its decoder from <pad>'s own embedding,
which training through the tied output projection makes non-zero, so the stock conversion of the *unmodified*
teacher translates differently from the teacher. Here:

- every vocabulary row is kept and the decoder starts from the model's decoder start token, as transformers does;
- the tokens generate() never emits (its suppressed and bad-words ids, <pad> in OPUS-MT models) get a -1e4 output
  bias, so the plain `ctranslate2.Translator` never emits them either;
- source and target vocabularies are written separately where the model has two (many OPUS-MT models), from the
  tokenizer's source and target vocabularies;
- a trimmed output vocabulary (autocompress.model.vocabulary) is the target vocabulary, its tokens in the model's
  own id order, so CTranslate2's output tokens are the kept ones;
- each stack gets its own head count and the teacher's per-head size (a pruned student keeps the head size, which
  CTranslate2 would otherwise derive as d_model / heads).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.export.fields import decoding_rules, model_fields
from autocompress.manifest import Manifest
from autocompress.model import arch
from autocompress.model.vocabulary import target_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.task import Task

QUANTIZATIONS = ("int8", "int16", "float32", "float16", "int8_float16", "bfloat16")
# The precision names the search uses (the precision pass) for CTranslate2's quantizations, and back.
QUANTIZATION_OF = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8", "int16": "int16"}
DTYPE_OF = {quantization: dtype for dtype, quantization in QUANTIZATION_OF.items()}
# What int8 is written as: its int8 weights, and the weights it keeps in floating point (position tables, norms,
# biases) in float16, which CTranslate2 widens back to float32 when it loads the model at compute type int8. The file is
# what users ship, and the widening loses nothing the float16 rounding had not: on the demo teacher 8.37 against
# 8.67 MiB, its translations unchanged (tests/test_export_ctranslate2.py).
STORED = {"int8": "int8_float16"}
SUPPRESSED_BIAS = -1e4  # far below any logit, and finite in float16


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
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    quantization: str = "int8",
    task: Task | None = None,
) -> Path:
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
    source, target = vocabularies(tokenizer, student)
    spec = _marian_spec(student, tokenizer, heads, head_dim, source, target)
    spec.validate()
    stored = STORED.get(quantization, quantization)
    spec.optimize(quantization=stored)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    tokenizer.save_pretrained(out_dir)
    dtype = DTYPE_OF.get(quantization, quantization)
    Manifest(
        runtime="ctranslate2",
        files={"model": "model.bin"},
        # quantization: the compute type the runtimes load it at; stored: what model.bin holds
        precision={"runtime": "ctranslate2", "dtype": dtype, "quantization": quantization, "stored": stored},
        **model_fields(student, task),
    ).write(out_dir)
    return out_dir


def vocabularies(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> tuple[list[str], list[str]]:
    """(source, target) tokens in id order, one per embedding row. A MarianTokenizer with separate vocabularies
    keeps the target side in `target_encoder`; its get_vocab() is the source side."""
    source_map = tokenizer.get_vocab()
    target_map = getattr(tokenizer, "target_encoder", None) if getattr(tokenizer, "separate_vocabs", False) else None
    rows = (model.get_input_embeddings().num_embeddings, model.get_output_embeddings().out_features)
    source = _in_id_order(source_map, rows[0])
    kept = target_ids(model)  # a trimmed output vocabulary: its rows are these of the tokenizer's target side
    if kept is None:
        return source, _in_id_order(target_map if target_map is not None else source_map, rows[1])
    whole = _in_id_order(target_map if target_map is not None else source_map, max(kept) + 1)
    return source, [whole[i] for i in kept]


def _in_id_order(vocabulary: dict[str, int], rows: int) -> list[str]:
    """A token for every row: rows no token maps to (an embedding padded past the vocabulary) get placeholders."""
    tokens = [f"<unused{i}>" for i in range(rows)]
    for token, index in vocabulary.items():
        if index < rows:
            tokens[index] = token
    return tokens


def _marian_spec(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    heads: dict[str, int],
    head_dim: int,
    source: list[str],
    target: list[str],
) -> Any:
    import torch
    from ctranslate2.converters.transformers import BartLoader
    from ctranslate2.specs import common_spec
    from ctranslate2.specs.transformer_spec import TransformerDecoderSpec, TransformerEncoderSpec, TransformerSpec

    config = model.config
    activations = {
        "gelu": common_spec.Activation.GELU,
        "gelu_python": common_spec.Activation.GELU,
        "gelu_new": common_spec.Activation.GELUTanh,
        "gelu_fast": common_spec.Activation.GELUTanh,
        "relu": common_spec.Activation.RELU,
        "silu": common_spec.Activation.SWISH,
        "swish": common_spec.Activation.SWISH,
    }
    activation = activations.get(config.activation_function)
    if activation is None:
        raise ExportError(f"CTranslate2 has no {config.activation_function!r} activation: this model exports to ONNX")
    shape = {"pre_norm": False, "activation": activation, "layernorm_embedding": False, "head_dim": head_dim}
    spec = TransformerSpec(
        TransformerEncoderSpec(config.encoder_layers, heads["encoder"], **shape),
        TransformerDecoderSpec(config.decoder_layers, heads["decoder"], **shape),
    )
    loader = BartLoader()  # its setters copy BART-style layers (Marian's) into the specs
    loader.set_encoder(spec.encoder, model.model.encoder)
    loader.set_decoder(spec.decoder, model.model.decoder)
    loader.set_linear(spec.decoder.projection, model.lm_head)
    bias = getattr(model, "final_logits_bias", None)
    bias = bias.detach().reshape(-1).clone() if bias is not None else torch.zeros(len(target))
    bias[decoding_rules(model)["suppressed_token_ids"]] = SUPPRESSED_BIAS
    if bias.count_nonzero() > 0:
        spec.decoder.projection.bias = bias.numpy()
    spec.config.bos_token = tokenizer.bos_token or tokenizer.eos_token
    spec.config.eos_token = tokenizer.eos_token
    spec.config.unk_token = tokenizer.unk_token
    spec.config.decoder_start_token = target[config.decoder_start_token_id]
    spec.register_source_vocabulary(source)
    spec.register_target_vocabulary(target)
    return spec
