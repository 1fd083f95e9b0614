"""Train the demo teacher: a small Marian model on the demo corpus, resumable from checkpoints.

Fixed step count and seed; dev BLEU/chrF logged periodically; a checkpoint (model, optimizer, RNG, data position)
is written atomically so an interrupted run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import torch

from autocompress.data import load_demo
from autocompress.model.batching import collate, encode_pairs, token_batches

if TYPE_CHECKING:
    from transformers import MarianMTModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class TeacherSettings:
    steps: int = 4000  # ~11 epochs, ~2.5 h on 2 CPU cores; dev BLEU was still rising slowly (see the card)
    seed: int = 1
    vocab_size: int = 8000
    d_model: int = 256
    heads: int = 4
    ffn: int = 1024
    encoder_layers: int = 4
    decoder_layers: int = 3
    max_tokens: int = 3000  # target tokens per batch
    max_length: int = 128
    lr: float = 1e-3
    warmup: int = 800
    label_smoothing: float = 0.1
    dropout: float = 0.2
    eval_every: int = 500
    checkpoint_every: int = 250
    eval_sentences: int = 200
    train_sentences: int | None = None  # a prefix of the train split (tests); None is all of it


def build_model(settings: TeacherSettings, tokenizer: PreTrainedTokenizerBase) -> MarianMTModel:
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=settings.d_model,
        encoder_layers=settings.encoder_layers,
        decoder_layers=settings.decoder_layers,
        encoder_attention_heads=settings.heads,
        decoder_attention_heads=settings.heads,
        encoder_ffn_dim=settings.ffn,
        decoder_ffn_dim=settings.ffn,
        max_position_embeddings=512,
        dropout=settings.dropout,
        attention_dropout=0.0,
        activation_function="swish",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        max_length=settings.max_length,
        num_beams=1,
    )
    return MarianMTModel(config)


def _lr(step: int, settings: TeacherSettings) -> float:
    step = max(step, 1)
    return settings.lr * min(step / settings.warmup, math.sqrt(settings.warmup / step))


def _save_atomic(obj: object, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_teacher(workdir: Path, settings: TeacherSettings, log: Callable[[str], object] = print) -> Path:
    """Train (or resume) in workdir; returns the directory of the final model (save_pretrained layout)."""
    from autocompress.demo.tokenizer import train_marian_tokenizer
    from autocompress.evaluate.bleu import score_translations
    from autocompress.model.load import load_tokenizer
    from autocompress.model.translate import translate_texts

    workdir.mkdir(parents=True, exist_ok=True)
    settings_file = workdir / "settings.json"
    # The schedule does not depend on the total, so a run may be extended or stopped early: only `steps` may differ.
    identity = {k: v for k, v in asdict(settings).items() if k != "steps"}
    if settings_file.exists():
        # A key missing from an older run is a field added since, whose default keeps the old behaviour.
        loaded = json.loads(settings_file.read_text())
        earlier = {k: loaded.get(k, getattr(TeacherSettings, k)) for k in identity}
        if earlier != identity:
            changed = sorted(k for k in identity if earlier.get(k) != identity[k])
            raise ValueError(f"{workdir} holds a run with other settings ({', '.join(changed)}): use another --workdir")
    settings_file.write_text(json.dumps(asdict(settings), indent=2))
    torch.manual_seed(settings.seed)
    train = load_demo("train").head(settings.train_sentences)
    dev = load_demo("dev").head(settings.eval_sentences)

    tok_dir = workdir / "tokenizer"
    if (tok_dir / "tokenizer_config.json").exists():
        tokenizer = load_tokenizer(tok_dir)
    else:
        tokenizer = train_marian_tokenizer(train.sources + train.references, tok_dir, settings.vocab_size)
    src, tgt = encode_pairs(tokenizer, train.sources, train.references, settings.max_length)
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]

    model = build_model(settings, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.98), weight_decay=0.0)
    ckpt_path = workdir / "checkpoint.pt"
    rng = random.Random(settings.seed)
    step, epoch, position = 0, 0, 0
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, epoch, position = ckpt["step"], ckpt["epoch"], ckpt["position"]
        rng.setstate(ckpt["rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        if step < settings.steps:
            log(f"resumed at step {step} (epoch {epoch}, batch {position})")
        else:
            log(f"loaded the step-{step} checkpoint: nothing left to train (--steps {settings.steps})")
    lock = _lock_for_training(workdir) if step < settings.steps else None  # noqa: F841 (held until return)
    batches = token_batches(lengths, settings.max_tokens, random.Random(settings.seed + epoch))
    model.train()
    started, tokens_seen = time.time(), 0
    while step < settings.steps:
        if position >= len(batches):
            epoch, position = epoch + 1, 0
            batches = token_batches(lengths, settings.max_tokens, random.Random(settings.seed + epoch))
        ids = batches[position]
        position += 1
        batch = collate(src, tgt, ids, tokenizer.pad_token_id)
        labels = batch["labels"]
        for group in optimizer.param_groups:
            group["lr"] = _lr(step + 1, settings)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        logits = out.logits
        loss = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)),
            labels.view(-1),
            ignore_index=-100,
            label_smoothing=settings.label_smoothing,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens_seen += int((labels != -100).sum())
        if step % 50 == 0:
            rate = tokens_seen / (time.time() - started)
            log(f"step {step} epoch {epoch} loss {loss.item():.3f} lr {_lr(step, settings):.2e} tgt_tok/s {rate:.0f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "epoch": epoch,
                "position": position,
                "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(),
            }
            _save_atomic(state, ckpt_path)
        if step % settings.eval_every == 0 or step == settings.steps:
            model.eval()
            hyps = translate_texts(model, tokenizer, list(dev.sources), beam=1, batch_size=32)
            bleu, chrf = score_translations(hyps, list(dev.references))
            log(f"eval step {step} dev[:{len(dev)}] greedy BLEU {bleu.score:.2f} chrF {chrf.score:.2f}")
            model.train()
    final = workdir / "final"
    model.eval()
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    state = {"step": step, "epoch": epoch, "settings": asdict(settings)}
    (final / "training_state.json").write_text(json.dumps(state, indent=2))
    return final


def _lock_for_training(workdir: Path) -> IO[str]:
    """One trainer per workdir: two would overwrite each other's checkpoints. Released when the file closes."""
    import fcntl

    handle = open(workdir / "train.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(f"another process is training in {workdir}: wait for it, or use another --workdir") from None
    return handle
