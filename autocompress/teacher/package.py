"""Write a trained teacher into the package as the demo: fp16 safetensors, tokenizer, model card."""

from __future__ import annotations

import shutil
from pathlib import Path

from autocompress.models import DEMO_MODEL


def install_demo_teacher(trained_dir: Path, target: Path = DEMO_MODEL) -> Path:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(trained_dir, dtype=torch.float16)
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    card = target / "README.md"
    if card.exists():  # the model card is written by hand from the evaluation; keep it across re-installs
        shutil.copy(card, staging / "README.md")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
