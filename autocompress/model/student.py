"""Students: built from the teacher by a recipe, saved and loaded with their pruned structure.

A pruned model cannot be described by its config alone (heads differ per layer, T5 layers keep particular heads), so
a student directory holds the config and weights of the save_pretrained layout plus `structure.json`: per attention
block its heads, per FFN block its width. Loading builds the model from the config, cuts it to that structure, then
loads the weights strictly.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.model.surgery import resized
from autocompress.model.vocabulary import resize_target, target_ids
from autocompress.passes import PASSES
from autocompress.passes.base import MODEL_STAGES
from autocompress.passes.ffn import NEURONS_ATTR, original_neurons
from autocompress.passes.heads import mark_pruned, original_heads
from autocompress.passes.sparsity import measured_sparsity

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.passes.context import PassContext
    from autocompress.recipe import Recipe

STRUCTURE_FILE = "structure.json"
WEIGHTS_FILE = "model.safetensors"


def build_student(recipe: Recipe, ctx: PassContext) -> PreTrainedModel:
    """Apply the recipe's model passes to a copy of the teacher; the teacher is left as it was."""
    torch.manual_seed(recipe.seed)
    ctx.seed, ctx.sparsifier = recipe.seed, None
    student = copy.deepcopy(ctx.teacher)
    for stack in arch.STACKS:
        for index, layer in enumerate(arch.layers(student, stack)):
            layer.autocompress_origin = index  # passes look up teacher-layer scores through this
    for config in recipe.passes:
        if PASSES[config.name].stage in MODEL_STAGES:  # artifact passes apply to the export (export.artifact)
            PASSES[config.name].apply(student, config, ctx)
    if ctx.sparsifier is not None:
        ctx.sparsifier.finish()  # reached on schedule during training, or at once when nothing trains
    ctx.metrics["sparsity"] = round(measured_sparsity(student), 5)
    ctx.metrics["parameters"] = sum(p.numel() for p in student.parameters())
    return student.eval()


def structure(model: PreTrainedModel) -> dict[str, Any]:
    return {
        "attention": [
            {"kind": b.kind, "layer": b.layer, "heads": original_heads(b).tolist()}
            for b in arch.attention_blocks(model)
        ],
        "ffn": [
            {"stack": b.stack, "layer": b.layer, "width": b.width, "neurons": original_neurons(b).tolist()}
            for b in arch.ffn_blocks(model)
        ],
        "target_ids": target_ids(model),  # a trimmed output vocabulary (autocompress.model.vocabulary), or None
    }


def save_student(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, recipe: Recipe | None = None
) -> Path:
    from safetensors.torch import save_model

    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out_dir)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_model(model, str(out_dir / WEIGHTS_FILE))  # drops the copies of tied weights; load_model restores them
    (out_dir / STRUCTURE_FILE).write_text(json.dumps(structure(model), indent=1))
    if recipe is not None:
        (out_dir / "recipe.json").write_text(json.dumps({"id": recipe.id, **recipe.to_dict()}, indent=2))
    return out_dir


def load_student(directory: Path) -> PreTrainedModel:
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, GenerationConfig

    config = AutoConfig.from_pretrained(directory)
    model = AutoModelForSeq2SeqLM.from_config(config)
    spec = json.loads((directory / STRUCTURE_FILE).read_text())
    blocks = {(b.kind, b.layer): b for b in arch.attention_blocks(model)}
    for entry in spec["attention"]:
        block = blocks[(entry["kind"], entry["layer"])]
        width = len(entry["heads"]) * block.head_dim
        if entry["heads"] != list(range(block.num_heads)):  # pruned, or reordered (an elastic student)
            module = block.module
            for name in (block.q, block.k, block.v):
                setattr(module, name, resized(getattr(module, name), getattr(module, name).in_features, width))
            setattr(module, block.o, resized(getattr(module, block.o), width, getattr(module, block.o).out_features))
            mark_pruned(module, torch.tensor(entry["heads"]))
    ffns = {(b.stack, b.layer): b for b in arch.ffn_blocks(model)}
    for entry in spec["ffn"]:
        block = ffns[(entry["stack"], entry["layer"])]
        for name in block.up_names:
            linear = getattr(block.up_owner, name)
            setattr(block.up_owner, name, resized(linear, linear.in_features, entry["width"]))
        setattr(block.down_owner, block.down_name, resized(block.down, entry["width"], block.down.out_features))
        if "neurons" in entry:
            setattr(block.down_owner, NEURONS_ATTR, torch.tensor(entry["neurons"]))
    if spec.get("target_ids") is not None:
        resize_target(model, spec["target_ids"])  # its configs were saved in its own id space already
    load_model(model, str(directory / WEIGHTS_FILE), strict=True)
    if (directory / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(directory)
    return model.eval()
