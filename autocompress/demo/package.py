"""Write a trained teacher into the package as the demo: fp16 safetensors, tokenizer, model card."""

from __future__ import annotations

import shutil
from pathlib import Path

from autocompress.model.load import DEMO_MODEL


def install_demo_teacher(trained_dir: Path, workdir: Path, target: Path = DEMO_MODEL) -> Path:
    """Install fp16 weights and tokenizer, then evaluate the installed weights and write the model card."""
    import json

    import torch
    from transformers import AutoModelForSeq2SeqLM

    from autocompress.demo.card import evaluate_for_card, write_model_card
    from autocompress.model.load import load_tokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(trained_dir, dtype=torch.float16)
    tokenizer = load_tokenizer(trained_dir)
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if (workdir / "train.log").exists():
        shutil.copy(workdir / "train.log", staging / "train.log")
    # Score what ships: the fp16 weights, loaded back as fp32 the way users load them.
    shipped = AutoModelForSeq2SeqLM.from_pretrained(staging, dtype=torch.float32).eval()
    scores = evaluate_for_card(shipped, tokenizer)
    state = json.loads((trained_dir / "training_state.json").read_text())
    write_model_card(staging, state, scores, workdir)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
