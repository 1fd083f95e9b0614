"""Teacher training: an interrupted run resumes to exactly the weights of an uninterrupted one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autocompress.demo.train_teacher import TeacherSettings, train_teacher

TINY = TeacherSettings(
    steps=4,
    vocab_size=300,
    d_model=32,
    heads=2,
    ffn=64,
    encoder_layers=1,
    decoder_layers=1,
    max_tokens=200,
    warmup=2,
    eval_every=4,
    checkpoint_every=1,
    eval_sentences=3,
    train_sentences=300,
    max_length=32,
)


def _weights(final: Path) -> dict[str, torch.Tensor]:
    return load_file(final / "model.safetensors")


def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    logs: list[str] = []
    straight = _weights(train_teacher(tmp_path / "straight", TINY, log=logs.append))
    assert any(line.startswith("eval step 4") and "BLEU" in line and "chrF" in line for line in logs)
    train_teacher(tmp_path / "resumed", replace(TINY, steps=2), log=logs.append)
    resumed_logs: list[str] = []
    resumed = _weights(train_teacher(tmp_path / "resumed", TINY, log=resumed_logs.append))
    assert "resumed at step 2 (epoch 0, batch 2)" in resumed_logs
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


def test_other_settings_in_same_workdir_are_refused(tmp_path: Path) -> None:
    train_teacher(tmp_path / "run", replace(TINY, steps=1), log=lambda _: None)
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        train_teacher(tmp_path / "run", replace(TINY, lr=0.5), log=lambda _: None)
