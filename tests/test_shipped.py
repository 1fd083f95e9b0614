"""The read-only cache layer: entries shipped in compact form are found by the same content hash, read as built, and
never written; and the package's own entries are the ones the demo teacher, its data and its spaces ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from autocompress.cache import SHIPPED, ArtifactCache
from autocompress.data import load_demo
from autocompress.demo.ship_prepared import compact
from autocompress.model.importance import ImportanceSettings
from autocompress.teacher.context import TeacherContext
from autocompress.teacher.translations import TranslationSettings


class ShippedOnly(ArtifactCache):
    """A cache that may not build: what is asked for must be in its read-only layers."""

    def get_or_build(self, kind: str, key: dict[str, Any], build: Any) -> Any:
        def refuse(_directory: Path) -> None:
            pytest.fail(f"{kind} is not shipped for this key: run python -m autocompress.demo.ship_prepared")

        return super().get_or_build(kind, key, refuse)


def test_a_compact_shipped_entry_reads_as_built_and_is_never_written(tiny_models: dict[str, Path], tmp_path: Path):
    teacher = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["marian"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["marian"])
    train = load_demo("dev").head(16)
    settings = {"translation_settings": TranslationSettings(max_length=24)}
    settings["importance_settings"] = ImportanceSettings(sentences=16, max_tokens=400, max_length=32)
    built = TeacherContext(teacher, tokenizer, train, ArtifactCache(tmp_path / "built", shipped=()), **settings)
    translations, scores = built.teacher_translations(), built.importance()
    shipped = tmp_path / "shipped"
    for kind, record in built.used.items():
        (shipped / kind).mkdir(parents=True)
        compact(Path(record["path"]), shipped / kind / Path(record["path"]).name)

    empty = tmp_path / "empty"
    reader = TeacherContext(teacher, tokenizer, train, ShippedOnly(empty, shipped=(shipped,)), **settings)
    assert reader.teacher_translations() == translations
    for name, tensor in reader.importance().items():
        assert tensor.to(scores[name].dtype).allclose(scores[name], rtol=1e-3), name
    assert all(record["hit"] for record in reader.used.values())
    assert not empty.exists() or not any(empty.rglob("*.safetensors"))


def test_the_package_ships_what_the_demo_spaces_ask_for(tmp_path: Path) -> None:
    """The entries under autocompress/demo/prepared are found for the demo teacher, its training data and the
    spaces' settings (a changed teacher, corpus or setting makes them stale: this fails and names the fix)."""
    from autocompress.engine.model_info import model_info
    from autocompress.model.load import load_model
    from autocompress.space import load_space, teacher_artifacts
    from autocompress.teacher.elastic import settings_from_space
    from autocompress.teacher.prepare import prepare

    if not SHIPPED.exists():
        pytest.fail("autocompress/demo/prepared is missing: run python -m autocompress.demo.ship_prepared")
    loaded = load_model("demo")
    cache = ShippedOnly(tmp_path, shipped=(SHIPPED,))
    ctx = TeacherContext(loaded.model, loaded.tokenizer, load_demo("train"), cache, task=loaded.task)
    for name in ("cpu",):
        space = load_space(name)
        found = prepare(ctx, teacher_artifacts(space), settings_from_space(space, model_info("demo").layers))
        assert found and all(entry["hit"] for entry in found.values()), name
