"""ONNX export of an encoder-decoder model for generation with a KV cache, under Hugging Face Optimum's names.

onnx/encoder_model.onnx   input_ids, attention_mask → last_hidden_state
onnx/decoder_cross.onnx   encoder_hidden_states → present.N.encoder.{key,value}: the cross-attention keys and values,
                          computed once a sentence
onnx/decoder_step.onnx    input_ids (one token a row), encoder_attention_mask, encoder_hidden_states,
                          past_key_values.N.decoder.{key,value} (empty at the first step),
                          past_key_values.N.encoder.{key,value} → logits, present.N.decoder.{key,value}, decoder_hidden

Per-layer head counts (pruned students) are just the shapes of those tensors. decoder_hidden is what the output
projection reads (after the final norm and any scaling): an onnxruntime artifact with a lexical shortlist
(autocompress.passes.shortlist) drops `logits` and projects onto its candidates only.

The artifact passes (precision, shortlist) work on these graphs; autocompress.export.layout then joins the two decoder
graphs into Optimum's decoder_model_merged (a `use_cache_branch` input chooses between computing the cross keys and
values and taking them back as past) and writes tokenizer.json: what Optimum's ORTModelForSeq2SeqLM and
transformers.js load. The directory also holds the tokenizer, the config, the generation config and artifact.json
(autocompress.manifest), which names the files a runtime loop needs.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.export import Dim

from autocompress.export.fields import model_fields
from autocompress.manifest import Manifest
from autocompress.model import arch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.task import Task

# The graphs' inputs and outputs as this module writes them: part of the cache key of a study's fp32 exports, so a
# study resumed after a change never reuses graphs of the old layout (3: Optimum's names, the cross graph apart)
GRAPH_LAYOUT = 3
GRAPH_DIR = "onnx"
FILES = {
    "encoder": f"{GRAPH_DIR}/encoder_model.onnx",
    "decoder_cross": f"{GRAPH_DIR}/decoder_cross.onnx",
    "decoder_step": f"{GRAPH_DIR}/decoder_step.onnx",
}


def past_names(
    layers: int, prefix: str = "past_key_values", parts: tuple[str, ...] = ("decoder", "encoder")
) -> list[str]:
    """{prefix}.N.{part}.key, {prefix}.N.{part}.value a layer (Optimum's names): past_key_values.0.decoder.key, …"""
    return [f"{prefix}.{i}.{part}.{kv}" for i in range(layers) for part in parts for kv in ("key", "value")]


class EncoderGraph(nn.Module):
    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class CrossGraph(nn.Module):
    """The cross-attention keys and values of every decoder layer, from the encoder's output."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.cross = [b for b in arch.attention_blocks(model) if b.kind == "cross"]

    def forward(self, encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden, outputs = encoder_hidden_states, []
        for block in self.cross:
            for name in (block.k, block.v):
                projected = getattr(block.module, name)(hidden)
                outputs.append(projected.view(*hidden.shape[:2], -1, block.head_dim).transpose(1, 2))
        return tuple(outputs)


class DecoderStepGraph(nn.Module):
    """One decoder step: the self-attention past grows by the new position; the cross keys and values are given."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.layers = len(arch.layers(model, "decoder"))
        self.cache_name = arch.cache_name(model)

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cache: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache, EncoderDecoderCache

        self_cache, cross_cache = DynamicCache(), DynamicCache()
        for i in range(self.layers):
            self_cache.update(cache[4 * i], cache[4 * i + 1], i)
            cross_cache.update(cache[4 * i + 2], cache[4 * i + 3], i)
        past = EncoderDecoderCache(self_cache, cross_cache)
        for i in range(self.layers):
            past.is_updated[i] = True  # cross keys/values come from the cross graph: never recompute them
        # The projection's input, whatever each family does before it (T5 scales by d_model ** -0.5 when tied)
        projected: list[torch.Tensor] = []
        hook = self.model.get_output_embeddings().register_forward_pre_hook(lambda _, args: projected.append(args[0]))
        try:
            out = self.model(
                decoder_input_ids=input_ids,
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=encoder_attention_mask,
                use_cache=True,
                **{self.cache_name: past},
            )
        finally:
            hook.remove()
        present = getattr(out, self.cache_name).self_attention_cache.layers
        return (out.logits, *[t for layer in present for t in (layer.keys, layer.values)], projected[0])


def export_onnx(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    task: Task | None = None,
) -> Path:
    """Write the three graphs and everything a runtime needs into out_dir (created; must not hold an artifact).
    `task` (prefix, languages; autocompress.task) is recorded for the runtimes, which apply it."""
    model = _exportable(model)
    blocks = arch.attention_blocks(model)
    self_heads = [b.num_heads for b in blocks if b.kind == "decoder_self"]
    head_dim, layers = blocks[0].head_dim, len(self_heads)
    (out_dir / GRAPH_DIR).mkdir(parents=True, exist_ok=True)
    # One self-contained file a graph, unless protobuf's 2 GB limit forces the weights out beside it.
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > 1_500_000_000

    batch, source, past = Dim("batch", min=1, max=1024), Dim("source", min=1, max=4096), Dim("past", min=1, max=4096)
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    sequence = {0: batch, 1: source}
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter reports every dynamic axis it merges and the dict-to-tuple renames it does: not actionable.
        warnings.filterwarnings("ignore", message=".*axis name.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*rename.*", category=UserWarning)
        encoder = EncoderGraph(model).eval()
        hidden = encoder(ids, mask)
        _export(encoder, (ids, mask), out_dir / FILES["encoder"], ["input_ids", "attention_mask"],
                ["last_hidden_state"], {"input_ids": sequence, "attention_mask": sequence}, external)  # fmt: skip
        cross_graph = CrossGraph(model).eval()
        cross = cross_graph(hidden)
        _export(cross_graph, (hidden,), out_dir / FILES["decoder_cross"], ["encoder_hidden_states"],
                past_names(layers, "present", ("encoder",)), {"encoder_hidden_states": sequence}, external)  # fmt: skip
        cache: list[torch.Tensor] = []
        cache_shapes: list[dict[int, Any]] = []
        for i in range(layers):
            empty = torch.zeros(2, self_heads[i], 2, head_dim)  # traced with a past of 2: the length stays symbolic
            cache += [empty, empty.clone(), cross[2 * i], cross[2 * i + 1]]
            cache_shapes += [{0: batch, 2: past}, {0: batch, 2: past}, {0: batch, 2: source}, {0: batch, 2: source}]
        start = torch.full((2, 1), model.config.decoder_start_token_id)  # one token a row: what generation feeds
        _export(DecoderStepGraph(model).eval(), (start, mask, hidden, tuple(cache)), out_dir / FILES["decoder_step"],
                ["input_ids", "encoder_attention_mask", "encoder_hidden_states", *past_names(layers)],
                ["logits", *past_names(layers, "present", ("decoder",)), "decoder_hidden"],
                ({0: batch}, sequence, sequence, tuple(cache_shapes)), external)  # fmt: skip
    tokenizer.save_pretrained(out_dir)
    model.config.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    Manifest(
        runtime="onnxruntime",
        files=dict(FILES),
        **model_fields(model, task),
    ).write(out_dir)
    return out_dir


def _export(
    module: nn.Module,
    args: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: Any,
    external: bool,
) -> None:
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes=dynamic_shapes,
        dynamo=True,
        optimize=True,
        external_data=external,
        verbose=False,
    )


def _exportable(model: PreTrainedModel) -> PreTrainedModel:
    """A copy in eval mode with eager attention (plain MatMul/Softmax, which ORT's quantizers and fusions know) and
    an output projection of its own: quantizers leave a weight shared with the embedding Gather in fp32."""
    model = copy.deepcopy(model).float().eval()
    model.set_attn_implementation("eager")
    head = model.get_output_embeddings()
    embeddings = (model.get_input_embeddings().weight, model.get_decoder().embed_tokens.weight)
    if head is not None and any(head.weight is weight for weight in embeddings):  # a trimmed one ties the decoder's
        head.weight = nn.Parameter(head.weight.detach().clone())
    return model
