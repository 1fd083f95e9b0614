"""ONNX export of an encoder-decoder model as two graphs, for generation with a KV cache.

encoder.onnx   input_ids, attention_mask → encoder_hidden_states, cross_key_i, cross_value_i (one pair a layer)
decoder.onnx   input_ids (one token a row), encoder_attention_mask, encoder_hidden_states, past_key_i,
               past_value_i (empty at the first step), cross_key_i, cross_value_i → logits, decoder_hidden,
               present_key_i, present_value_i

decoder_hidden is what the output projection reads (after the final norm and any scaling): an onnxruntime artifact
with a lexical shortlist (autocompress.passes.shortlist) drops `logits` and projects onto its candidates only.

Cross-attention keys and values are computed once by the encoder graph, not at every step. Per-layer head counts
(pruned students) are just the shapes of those tensors. The directory also holds the tokenizer, the config, the
recipe (when there is one) and artifact.json (autocompress.export.manifest), which names everything a runtime loop
needs.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from autocompress.export.manifest import Manifest, model_fields
from autocompress.model import arch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.recipe import Recipe
    from autocompress.task import Task

# The graphs' inputs and outputs as this module writes them: part of the cache key of a study's fp32 exports, so a
# study resumed after a change never reuses graphs of the old layout (2: the decoder returns decoder_hidden)
GRAPH_LAYOUT = 2


class EncoderGraph(nn.Module):
    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.cross = [b for b in arch.attention_blocks(model) if b.kind == "cross"]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        outputs = [hidden]
        for block in self.cross:
            for name in (block.k, block.v):
                projected = getattr(block.module, name)(hidden)
                outputs.append(projected.view(*hidden.shape[:2], -1, block.head_dim).transpose(1, 2))
        return tuple(outputs)


class DecoderStepGraph(nn.Module):
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
            past.is_updated[i] = True  # cross keys/values come from the encoder graph: never recompute them
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
        return (out.logits[:, -1], projected[0][:, -1], *[t for layer in present for t in (layer.keys, layer.values)])


def cache_names(layers: int) -> list[str]:
    return [
        n for i in range(layers) for n in (f"past_key_{i}", f"past_value_{i}", f"cross_key_{i}", f"cross_value_{i}")
    ]


def export_onnx(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    recipe: Recipe | None = None,
    metrics: dict[str, Any] | None = None,
    task: Task | None = None,
) -> Path:
    """Write the two graphs and everything a runtime needs into out_dir (created; must not hold an artifact).
    `task` (prefix, languages; autocompress.task) is recorded for the runtimes, which apply it."""
    from torch.export import Dim

    model = _exportable(model)
    blocks = arch.attention_blocks(model)
    self_heads = [b.num_heads for b in blocks if b.kind == "decoder_self"]
    head_dim = blocks[0].head_dim
    layers = len(self_heads)
    out_dir.mkdir(parents=True, exist_ok=True)
    # One self-contained file a graph, unless protobuf's 2 GB limit forces the weights out beside it.
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > 1_500_000_000

    batch, source, past = Dim("batch", min=1, max=1024), Dim("source", min=1, max=4096), Dim("past", min=1, max=4096)
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    encoder = EncoderGraph(model).eval()
    cross_names = [n for i in range(layers) for n in (f"cross_key_{i}", f"cross_value_{i}")]
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter reports every dynamic axis it merges and the dict-to-tuple renames it does: not actionable.
        warnings.filterwarnings("ignore", message=".*axis name.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*rename.*", category=UserWarning)
        encoded = encoder(ids, mask)
        torch.onnx.export(
            encoder,
            (ids, mask),
            str(out_dir / "encoder.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["encoder_hidden_states", *cross_names],
            dynamic_shapes={"input_ids": {0: batch, 1: source}, "attention_mask": {0: batch, 1: source}},
            dynamo=True,
            optimize=True,
            external_data=external,
            verbose=False,
        )
        cache: list[torch.Tensor] = []
        cache_shapes: list[dict[int, Any]] = []
        for i in range(layers):
            empty = torch.zeros(2, self_heads[i], 2, head_dim)  # traced with a past of 2: the length stays symbolic
            cache += [empty, empty.clone(), encoded[1 + 2 * i], encoded[2 + 2 * i]]
            cache_shapes += [{0: batch, 2: past}, {0: batch, 2: past}, {0: batch, 2: source}, {0: batch, 2: source}]
        start = torch.full((2, 1), model.config.decoder_start_token_id)
        torch.onnx.export(
            DecoderStepGraph(model).eval(),
            (start, mask, encoded[0], tuple(cache)),
            str(out_dir / "decoder.onnx"),
            input_names=["input_ids", "encoder_attention_mask", "encoder_hidden_states", *cache_names(layers)],
            output_names=[
                "logits",
                "decoder_hidden",
                *[n for i in range(layers) for n in (f"present_key_{i}", f"present_value_{i}")],
            ],
            dynamic_shapes=({0: batch}, {0: batch, 1: source}, {0: batch, 1: source}, tuple(cache_shapes)),
            dynamo=True,
            optimize=True,
            external_data=external,
            verbose=False,
        )
    tokenizer.save_pretrained(out_dir)
    model.config.save_pretrained(out_dir)
    Manifest(
        runtime="onnxruntime",
        files={"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
        recipe=recipe.to_dict() if recipe is not None else None,
        recipe_id=recipe.id if recipe is not None else None,
        metrics=metrics or {},
        **model_fields(model, task),
    ).write(out_dir)
    return out_dir


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
