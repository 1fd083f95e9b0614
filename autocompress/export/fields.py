"""The manifest fields every exporter fills the same way from the model: how it decodes, its structure, its task."""

from __future__ import annotations

from typing import Any


def decoding_rules(model: Any) -> dict[str, Any]:
    """What transformers' generate() imposes on every step for this model, so the runtimes decode the same way."""
    config = model.generation_config
    bad = list(config.bad_words_ids or [])
    if any(len(ids) != 1 for ids in bad):
        raise ValueError("bad_words_ids longer than one token are not supported by the runtime loops")
    return {
        "forced_bos_token_id": config.forced_bos_token_id,  # the first generated token (MBart/M2M100 language)
        "forced_eos_token_id": config.forced_eos_token_id,  # forced when the length limit is reached
        "suppressed_token_ids": sorted({ids[0] for ids in bad} | set(config.suppress_tokens or [])),
    }


def model_fields(model: Any, task: Any = None) -> dict[str, Any]:
    """The fields every exporter fills the same way from the model (and its task, autocompress.task.Task)."""
    from autocompress.model import arch
    from autocompress.model.vocabulary import target_ids

    blocks = arch.attention_blocks(model)
    heads = {kind: [b.num_heads for b in blocks if b.kind == kind] for kind in arch.ATTENTION_KINDS}
    return {
        "family": model.config.model_type,
        "decoder_start_token_id": model.config.decoder_start_token_id,
        "eos_token_id": model.config.eos_token_id,
        "pad_token_id": model.config.pad_token_id,
        "decoding": decoding_rules(model),
        "structure": {
            "head_dim": blocks[0].head_dim,
            "encoder_heads": heads["encoder_self"],
            "self_heads": heads["decoder_self"],
            "cross_heads": heads["cross"],
        },
        "task": task.to_dict() if task is not None else {},
        "target_ids": target_ids(model),
    }
