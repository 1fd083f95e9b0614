"""One view of the encoder-decoder families we compress (BART-style: Marian, MBart, M2M100; and T5).

Passes speak of stacks, layers, attention blocks and FFN blocks; this module maps those words onto each family's
attribute names, so that no pass needs to know which family it is editing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Stack = Literal["encoder", "decoder"]
AttentionKind = Literal["encoder_self", "decoder_self", "cross"]
STACKS: tuple[Stack, ...] = ("encoder", "decoder")
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("encoder_self", "decoder_self", "cross")


@dataclass(frozen=True)
class AttentionBlock:
    kind: AttentionKind
    layer: int  # position in the current stack
    module: nn.Module
    q: str
    k: str
    v: str
    o: str

    @property
    def head_dim(self) -> int:
        return int(getattr(self.module, "head_dim", 0) or self.module.key_value_proj_dim)

    @property
    def num_heads(self) -> int:
        return getattr(self.module, self.o).in_features // self.head_dim


@dataclass(frozen=True)
class FFNBlock:
    stack: Stack
    layer: int
    up: tuple[nn.Linear, ...]  # projections into the intermediate size (two for gated T5)
    up_names: tuple[str, ...]
    up_owner: nn.Module
    down_owner: nn.Module
    down_name: str

    @property
    def down(self) -> nn.Linear:
        return getattr(self.down_owner, self.down_name)

    @property
    def width(self) -> int:
        return self.down.in_features


def family(model: nn.Module) -> str:
    return "t5" if model.config.model_type in ("t5", "mt5") else "bart"


def layers(model: nn.Module, stack: Stack) -> nn.ModuleList:
    if family(model) == "t5":
        return getattr(model, stack).block
    return getattr(model.model, stack).layers


def set_layers(model: nn.Module, stack: Stack, kept: list[nn.Module]) -> None:
    """Replace a stack's layers and keep the config and the cache indices consistent with the new depth."""
    modules = nn.ModuleList(kept)
    if family(model) == "t5":
        first = layers(model, stack)[0].layer[0].SelfAttention
        new_first = modules[0].layer[0].SelfAttention
        if new_first is not first:  # T5 computes its relative position bias in the first block only
            new_first.relative_attention_bias = first.relative_attention_bias
            new_first.has_relative_attention_bias = True
        getattr(model, stack).block = modules
        getattr(model, stack).config.num_layers = len(kept)
        setattr(model.config, "num_layers" if stack == "encoder" else "num_decoder_layers", len(kept))
    else:
        getattr(model.model, stack).layers = modules
        setattr(model.config, f"{stack}_layers", len(kept))
    for index, layer in enumerate(modules):
        for sub in layer.modules():  # the KV cache is indexed by layer_idx, which must follow the new order
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = index


def attention_blocks(model: nn.Module) -> list[AttentionBlock]:
    blocks: list[AttentionBlock] = []
    t5 = family(model) == "t5"
    names = ("q", "k", "v", "o") if t5 else ("q_proj", "k_proj", "v_proj", "out_proj")
    for stack in STACKS:
        for i, layer in enumerate(layers(model, stack)):
            if t5:
                found = [("self", layer.layer[0].SelfAttention)]
                if stack == "decoder":
                    found.append(("cross", layer.layer[1].EncDecAttention))
            else:
                found = [("self", layer.self_attn)]
                if stack == "decoder":
                    found.append(("cross", layer.encoder_attn))
            for role, module in found:
                kind: AttentionKind = "cross" if role == "cross" else f"{stack}_self"  # type: ignore[assignment]
                blocks.append(AttentionBlock(kind, i, module, *names))
    return blocks


def ffn_blocks(model: nn.Module) -> list[FFNBlock]:
    blocks: list[FFNBlock] = []
    for stack in STACKS:
        for i, layer in enumerate(layers(model, stack)):
            if family(model) == "t5":
                dense = layer.layer[-1].DenseReluDense
                up_names = ("wi_0", "wi_1") if hasattr(dense, "wi_0") else ("wi",)
                up = tuple(getattr(dense, n) for n in up_names)
                blocks.append(FFNBlock(stack, i, up, up_names, dense, dense, "wo"))
            else:
                blocks.append(FFNBlock(stack, i, (layer.fc1,), ("fc1",), layer, layer, "fc2"))
    return blocks


def prunable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The weight matrices inside the layers (attention and FFN): what sparsity acts on. Embeddings and the output
    projection stay dense: they are lookups or shared with the embedding."""
    found = []
    for stack in STACKS:
        for i, layer in enumerate(layers(model, stack)):
            for name, module in layer.named_modules():
                if isinstance(module, nn.Linear):
                    found.append((f"{stack}.{i}.{name}", module))
    return found


def generate_kwargs(model: nn.Module) -> dict[str, object]:
    """Extra generate() arguments a student needs. transformers 5 sizes T5's decoder cache from `num_layers` (the
    encoder's depth): a T5 with a deeper decoder than encoder fails in generate() with an IndexError, so it gets a
    cache that grows layer by layer instead."""
    if family(model) == "t5" and model.config.num_decoder_layers > model.config.num_layers:
        from transformers import DynamicCache, EncoderDecoderCache

        return {cache_name(model): EncoderDecoderCache(DynamicCache(), DynamicCache())}
    return {}


def cache_name(model: nn.Module) -> str:
    """The name of the KV cache, as forward()'s argument and as the output's field, in this transformers release:
    5.24 renamed `past_key_values` to `cache` (the old name is deprecated until 5.40)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def freeze_fixed_positions(model: nn.Module) -> None:
    """Sinusoidal position tables (Marian's) are a formula, not weights: transformers 5 loads them as trainable
    parameters, and training moves the encoder's and the decoder's apart, so that an export stores two tables where
    one would do (CTranslate2 aliases equal variables; 0.5 MiB each in the demo teacher). Learned positions (MBart)
    stay trainable; M2M100's and NLLB's are buffers already."""
    for module in model.modules():
        if type(module).__name__.endswith("SinusoidalPositionalEmbedding"):
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def share_fixed_positions(model: nn.Module) -> None:
    """Give a model's encoder and decoder one sinusoidal position table again where training moved them apart (an
    elastic student trained before freeze_fixed_positions), so that its exports store one. The decoder's table is
    kept: on the demo's shipped elastic student, whole, dev BLEU 21.74 with both tables, 21.70 with the decoder's in
    both, 21.68 with their mean, 21.37 with the encoder's and 21.20 with the formula's."""
    if family(model) == "t5":
        return
    encoder, decoder = (getattr(getattr(model.model, stack), "embed_positions", None) for stack in STACKS)
    if not all(type(table).__name__.endswith("SinusoidalPositionalEmbedding") for table in (encoder, decoder)):
        return  # learned positions (MBart) are the model's own on each side; M2M100's are buffers, never trained
    if encoder.weight.shape == decoder.weight.shape:
        with torch.no_grad():
            encoder.weight.copy_(decoder.weight)
