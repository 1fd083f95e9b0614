"""What the search needs from the teacher before any work: its family and layer counts, read from its config, and a
space checked against them by drawing recipes from it."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from autocompress.space import SearchSpace, suggest_recipe


@dataclass(frozen=True)
class ModelInfo:
    family: str
    layers: dict[str, int]


def model_info(spec: str) -> ModelInfo:
    """What the space needs from the teacher, read from its config (the weights stay unloaded in the driver)."""
    from autocompress.model.load import read_config, resolve_model_dir

    config = read_config(resolve_model_dir(spec))
    encoder = getattr(config, "encoder_layers", None) or config.num_layers
    decoder = getattr(config, "decoder_layers", None) or getattr(config, "num_decoder_layers", None) or encoder
    return ModelInfo(config.model_type, {"encoder": int(encoder), "decoder": int(decoder)})


def check_space(space: SearchSpace, info: ModelInfo, device: str) -> None:
    """Draw recipes from the space before any work, so that an impossible space fails now, with its reason."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(32):
        suggest_recipe(probe.ask(), space, info.layers, device, info.family)
