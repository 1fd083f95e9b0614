"""Students saved and loaded with their pruned structure (passes/build.py builds them from the teacher).

A pruned model cannot be described by its config alone (heads differ per layer, T5 layers keep particular heads), so
a student directory holds the config and weights of the save_pretrained layout plus `structure.json`: per attention
block its heads, per FFN block its width. Loading builds the model from the config, cuts it to that structure, then
loads the weights strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autocompress.model import arch
from autocompress.model.structure import NEURONS_ATTR, mark_pruned, original_heads, original_neurons
from autocompress.model.surgery import resized
from autocompress.model.vocabulary import resize_target, target_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


STRUCTURE_FILE = "structure.json"
WEIGHTS_FILE = "model.safetensors"


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
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, recipe: dict[str, Any] | None = None
) -> Path:
    """The student in save_pretrained layout with its structure; `recipe` (the recipe's record: id and passes) is
    written beside it as recipe.json."""
    from safetensors.torch import save_model

    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out_dir)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_model(model, str(out_dir / WEIGHTS_FILE))  # drops the copies of tied weights; load_model restores them
    (out_dir / STRUCTURE_FILE).write_text(json.dumps(structure(model), indent=1))
    if recipe is not None:
        (out_dir / "recipe.json").write_text(json.dumps(recipe, indent=2))
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
