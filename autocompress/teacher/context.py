"""The teacher's half of a search's work: the untouched teacher, its tokenizer, data and task, and what is derived from
it once and cached (importance scores, its translations of the training data, the token counts and lexical table
read from them, the elastic student). Every student's build (passes/context.py) draws on one of these; a worker keeps
it for its life.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autocompress.cache import ArtifactCache, corpus_fingerprint, model_fingerprint
from autocompress.model.importance import ImportanceSettings, score_importance
from autocompress.task import Task
from autocompress.teacher import lexicon
from autocompress.teacher.translations import TranslationSettings, cache_settings, translate_sources

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from autocompress.data import ParallelCorpus
    from autocompress.teacher.elastic import ElasticSettings


@dataclass
class TeacherContext:
    teacher: PreTrainedModel  # never modified: students are built from a copy
    tokenizer: PreTrainedTokenizerBase
    train: ParallelCorpus
    cache: ArtifactCache
    device: str = "cpu"
    seed: int = 0  # the recipe's: batch order and initialisation of anything new
    translation_settings: TranslationSettings = field(default_factory=TranslationSettings)  # sequence-level KD data
    log: Callable[[str], object] = lambda _message: None
    importance_settings: ImportanceSettings = field(default_factory=ImportanceSettings)
    # Bound to the teacher and tokenizer already; its prefix goes before every training source.
    task: Task = field(default_factory=Task)
    # The elastic student students may start from (passes.init), given on first use: it is built once per space.
    elastic: Callable[[], PreTrainedModel] | None = None
    # Each artifact used since the caller last emptied it: whether it was built or found, and what building it cost
    # (a student's build records them: passes.build).
    used: dict[str, dict[str, Any]] = field(default_factory=dict)
    _importance: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    _elastic: tuple[Path, PreTrainedModel] | None = field(default=None, repr=False)
    _translations: tuple[list[list[int]], list[list[int]]] | None = field(default=None, repr=False)
    # What each artifact's first use recorded; a later use in this worker reads the memo and records a hit.
    _first_use: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @cached_property
    def teacher_key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"teacher": model_fingerprint(self.teacher), "data": corpus_fingerprint(self.train)}
        if self.task.to_dict():  # another prefix or language pair: other teacher translations and scores
            key["task"] = self.task.to_dict()
        return key

    @property
    def model_train(self) -> ParallelCorpus:
        """The training data as the model reads it: sources with the task's prefix."""
        return self.train.with_source_prefix(self.task.source_prefix)

    def cached(self, kind: str, settings: dict[str, Any], build: Callable[[], dict[str, torch.Tensor]]) -> dict:
        """A teacher-derived artifact (tensors), built once per (teacher, data, settings); hits and costs recorded."""
        from safetensors.torch import load_file, save_file

        def write(directory: Any) -> None:
            save_file(build(), str(directory / "tensors.safetensors"))

        entry = self.cache.get_or_build(kind, {**self.teacher_key, "settings": settings}, write)
        self._record(kind, entry)
        self.log(f"{kind}: {'cached' if entry.hit else 'built'} ({entry.seconds:.1f} s to build) at {entry.path}")
        return load_file(str(entry.path / "tensors.safetensors"))

    def teacher_translations(self) -> tuple[list[list[int]], list[list[int]]]:
        """(source ids, the teacher's output ids) for the training data, translated once (teacher.translations)."""
        if self._translations is not None:
            self._record("teacher_translations")
            return self._translations
        settings = self.translation_settings
        total = len(self.train)
        chosen = list(range(total))
        if settings.sentences is not None and settings.sentences < total:
            chosen = sorted(random.Random(0).sample(chosen, settings.sentences))
        sources = [self.train.sources[i] for i in chosen]

        def build() -> dict[str, torch.Tensor]:
            targets = translate_sources(
                self.teacher, self.tokenizer, self.task, sources, settings, self.device, log=self.log
            )
            inputs = self.tokenizer(self.task.sources(sources), truncation=True, max_length=settings.max_length)
            return {**_packed("source", inputs["input_ids"]), **_packed("target", targets)}

        found = self.cached("teacher_translations", self.translations_key(), build)
        self._translations = (_unpacked(found, "source"), _unpacked(found, "target"))
        return self._translations

    def translations_key(self) -> dict[str, Any]:
        """The settings the teacher's translations are cached by, for them and for what is derived from them."""
        return cache_settings(self.translation_settings, self.teacher.config.model_type, self.device)

    def elastic_student(self, settings: ElasticSettings) -> PreTrainedModel:
        """The elastic student for these settings (teacher.elastic), trained once and cached; its checkpoints live
        beside the cache, so an interrupted build resumes."""
        from autocompress.model.student import load_student, save_student
        from autocompress.teacher.elastic import train_elastic

        key = {**self.teacher_key, "settings": settings.to_dict()}
        workdir = self.cache.root / "elastic-work" / self.cache.digest(key)

        def build(directory: Path) -> None:
            workdir.mkdir(parents=True, exist_ok=True)
            save_student(train_elastic(self, settings, workdir), self.tokenizer, directory / "student")
            shutil.rmtree(workdir, ignore_errors=True)  # its checkpoint (weights and optimizer) is not needed now

        entry = self.cache.get_or_build("elastic", key, build)
        self._record("elastic", entry)
        if self._elastic is None or self._elastic[0] != entry.path:
            self._elastic = (entry.path, load_student(entry.path / "student"))
        return self._elastic[1]

    def importance(self) -> dict[str, torch.Tensor]:
        """Head, neuron and layer scores of the teacher; read once per context (several passes ask)."""
        if self._importance is not None:
            self._record("importance")
        else:
            settings = self.importance_settings

            def build() -> dict[str, torch.Tensor]:
                return score_importance(self.teacher, self.tokenizer, self.model_train, settings)

            self._importance = self.cached("importance", asdict(settings), build)
        return self._importance

    def target_token_counts(self) -> torch.Tensor:
        """How often each target id occurs in the references and the teacher's translations (teacher.lexicon)."""
        return lexicon.target_token_counts(self)

    def shortlist_table(self) -> dict[str, torch.Tensor]:
        """The lexical table shortlists draw on (teacher.lexicon)."""
        return lexicon.shortlist_table(self)

    def _record(self, kind: str, entry: Any = None) -> None:
        """Note in `used` whether `kind` was built for this use or found, and what building it cost."""
        if entry is not None:
            record = {"hit": entry.hit, "seconds": round(entry.seconds, 2), "path": str(entry.path)}
            self._first_use[kind] = {**record, "hit": True}
        else:
            record = self._first_use[kind]
        self.used[kind] = record


def _packed(name: str, rows: list[list[int]]) -> dict[str, torch.Tensor]:
    return {
        f"{name}_ids": torch.tensor([t for row in rows for t in row], dtype=torch.int32),
        f"{name}_offsets": torch.tensor([0, *accumulate(len(row) for row in rows)], dtype=torch.int64),
    }


def _unpacked(found: dict[str, torch.Tensor], name: str) -> list[list[int]]:
    ids, offsets = found[f"{name}_ids"].tolist(), found[f"{name}_offsets"].tolist()
    return [ids[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
