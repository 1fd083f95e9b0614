"""Recipes: canonical, round-trippable, content-hashed; bad ones refused with the pass, parameter and range named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.cache import ArtifactCache
from autocompress.passes import PASSES
from autocompress.passes.base import RecipeError
from autocompress.passes.recipe import Recipe

FULL = [
    ("layers", {"encoder_layers": 3, "decoder_layers": 1, "strategy": "importance"}),
    ("heads", {"fraction": 0.5, "cross": 0.25}),
    ("ffn", {"keep": 0.5}),
    ("sparsity", {"target": 0.4, "scope": "per_layer"}),
    ("distill", {"method": "word+sequence", "temperature": 3.0, "alpha": 0.7, "steps": 100}),
]


def test_round_trip_keeps_the_content_hash() -> None:
    recipe = Recipe.make(FULL, seed=7)
    again = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe
    assert again.id == recipe.id
    assert hash(again) == hash(recipe)


def test_defaults_written_out_or_omitted_hash_the_same() -> None:
    explicit = {p.name: p.default for p in PASSES["distill"].params}
    assert Recipe.make([("distill", explicit)]).id == Recipe.make([("distill", {})]).id
    assert Recipe.make([("distill", {"steps": 400})]).id == Recipe.make([("distill", {"steps": 400.0})]).id


def test_different_recipes_have_different_ids() -> None:
    ids = {Recipe.make(FULL).id, Recipe.make(FULL, seed=1).id, Recipe.make(FULL[:-1]).id}
    ids.add(Recipe.make([("ffn", {"keep": 0.6})]).id)
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("passes", "message"),
    [
        ([("prune_everything", {})], r"unknown pass 'prune_everything': known passes are distill, ffn, heads"),
        (
            [("heads", {"fractoin": 0.5})],
            r"pass 'heads' has no parameter 'fractoin': its parameters are allocation, cross",
        ),
        (
            [("heads", {"fraction": 1.5})],
            r"pass 'heads' parameter 'fraction' = 1.5 is invalid: allowed float in \[0.0, 0.95\]",
        ),
        (
            [("distill", {"method": "magic"})],
            r"pass 'distill' parameter 'method' = 'magic' is invalid: allowed one of 'word'",
        ),
        (
            [("distill", {"steps": 2.5})],
            r"pass 'distill' parameter 'steps' = 2.5 is invalid: allowed int in \[0, 1000000\]",
        ),
        (
            [("layers", {"encoder_layers": 0})],
            r"pass 'layers' parameter 'encoder_layers' = 0 is invalid: allowed int in \[1, 64\] or null",
        ),
        ([("sparsity", {"target": "half"})], r"pass 'sparsity' parameter 'target' = 'half' is invalid"),
        (
            [("distill", {}), ("heads", {})],
            r"out of order: stages run init → structure → sparsity → train → vocabulary → artifact",
        ),
        ([("ffn", {}), ("ffn", {"keep": 0.5})], r"pass 'ffn' appears more than once"),
    ],
)
def test_bad_recipes_are_refused_clearly(passes: list, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        Recipe.make(passes)


def test_unsupported_version_is_refused() -> None:
    with pytest.raises(RecipeError, match="recipe version 99 is not supported"):
        Recipe.from_dict({"version": 99, "passes": []})


def test_recipe_id_is_stable_across_processes() -> None:
    code = "from autocompress.passes.recipe import Recipe; print(Recipe.make([('heads', {'fraction': 0.5})]).id)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == Recipe.make([("heads", {"fraction": 0.5})]).id


def test_cache_builds_once_and_rebuilds_for_another_key(tmp_path: Path) -> None:
    cache, built = ArtifactCache(tmp_path), []

    def build(directory: Path) -> None:
        built.append(directory)
        (directory / "value.txt").write_text(str(len(built)))

    first = cache.get_or_build("kind", {"teacher": "a", "settings": {"n": 1}}, build)
    second = cache.get_or_build("kind", {"settings": {"n": 1}, "teacher": "a"}, build)
    third = cache.get_or_build("kind", {"teacher": "a", "settings": {"n": 2}}, build)
    assert (first.hit, second.hit, third.hit) == (False, True, False)
    assert first.path == second.path != third.path
    assert (second.path / "value.txt").read_text() == "1"
    assert len(built) == 2
    assert not list(tmp_path.glob("kind/*.building"))
