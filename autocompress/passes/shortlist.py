"""A lexical shortlist: per sentence, the output projection scores only the target tokens its source tokens make
likely, plus the most frequent ones (Marian/Bergamot's `lex.s2t`, CTranslate2's vocabulary mapping).

The table is built once per (teacher, data) from the training sources and both what the references and what the
teacher's translations of them hold: for each source token, the target tokens ranked by the Dice coefficient of the
sentences they share (a translation goes with its source word; a frequent word goes with every word), and the target
tokens by frequency; cached like the other teacher artifacts. A trial picks how many of each it keeps
(`top_k`, `frequent`). CTranslate2 runs it through its vocabulary mapping (vmap.txt beside the model, `use_vmap`);
the onnxruntime loop does not yet, so the search offers it with CTranslate2 only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autocompress.export.manifest import Manifest, update_manifest
from autocompress.passes.base import ArtifactBuild, Choices, Param, Pass, RecipeError, SpaceInfo

if TYPE_CHECKING:
    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

TABLE_WIDTH = 100  # candidates kept per source token in the cached table; a trial's top_k is at most this
VMAP_FILE = "vmap.txt"
PARAMS = (
    Param("top_k", "int", 0, "target candidates per source token, by Dice (0: no shortlist)", low=0, high=TABLE_WIDTH),
    Param(
        "frequent",
        "int",
        100,
        "the most frequent target tokens, always candidates",
        low=0,
        high=10000,
        when=(("top_k", tuple(range(1, TABLE_WIDTH + 1))),),
    ),
)


class Shortlist(Pass):
    name = "shortlist"
    stage = "artifact"
    params = PARAMS

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("top_k", 0) == 0

    def constrain(self, chosen: Choices, space: SpaceInfo) -> None:
        if chosen.get("precision", {}).get("runtime", "onnxruntime") != "ctranslate2" and chosen[self.name]:
            chosen[self.name] = {"top_k": 0}  # onnxruntime's loop runs the whole projection (not yet a shortlist)

    def apply(self, subject: ArtifactBuild, config: PassConfig, ctx: PassContext | None) -> None:
        if self.is_noop(config.as_dict()):
            return
        manifest = Manifest.read(subject.out)
        if manifest.runtime != "ctranslate2":
            raise RecipeError(f"a shortlist runs in CTranslate2 artifacts; this one is {manifest.runtime}")
        if ctx is None:
            raise RuntimeError("the shortlist needs the teacher's pass context for its table")
        table = shortlist_table(ctx)
        write_vmap(subject.out, table, config["top_k"], config["frequent"])
        update_manifest(subject.out, shortlist={**config.as_dict(), "file": VMAP_FILE})


def shortlist_table(ctx: PassContext) -> dict[str, torch.Tensor]:
    """`top` (source vocabulary × TABLE_WIDTH target ids, by Dice coefficient, -1 past the end) and
    `frequent` (target ids by the number of sentences they occur in), built once per teacher and data."""

    def build() -> dict[str, torch.Tensor]:
        from scipy import sparse

        sources, translations = ctx.teacher_translations()
        references = ctx.tokenizer(text_target=list(ctx.train.references), truncation=True, max_length=512)
        rows = (sources + sources, translations + references["input_ids"])
        source_size = ctx.teacher.get_input_embeddings().num_embeddings
        target_size = ctx.teacher.get_output_embeddings().out_features

        def presence(sentences: list[list[int]], size: int) -> Any:
            pairs = {(i, t) for i, row in enumerate(sentences) for t in row if 0 <= t < size}
            index = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
            data = np.ones(len(index), dtype=np.float32)
            return sparse.csr_matrix((data, (index[:, 0], index[:, 1])), shape=(len(sentences), size))

        src, tgt = presence(rows[0], source_size), presence(rows[1], target_size)
        shared = (src.T @ tgt).tocsr()  # source token × target token: sentences holding both
        source_count, frequency = np.asarray(src.sum(axis=0)).ravel(), np.asarray(tgt.sum(axis=0)).ravel()
        top = np.full((source_size, TABLE_WIDTH), -1, dtype=np.int32)
        for token in range(source_size):
            start, end = shared.indptr[token], shared.indptr[token + 1]
            ids, counts = shared.indices[start:end], shared.data[start:end]
            # Dice: a translation shares its sentences with the source token; a frequent word shares everyone's
            dice = 2 * counts / (source_count[token] + frequency[ids])
            best = ids[np.lexsort((ids, -dice))][:TABLE_WIDTH]
            top[token, : len(best)] = best
        frequent = np.lexsort((np.arange(target_size), -frequency)).astype(np.int32)
        return {"top": torch.from_numpy(top), "frequent": torch.from_numpy(frequent)}

    return ctx.cached("shortlist_table", {**ctx.translations_key(), "ranking": "dice", "width": TABLE_WIDTH}, build)


def write_vmap(directory: Path, table: dict[str, torch.Tensor], top_k: int, frequent: int) -> None:
    """CTranslate2's vocabulary mapping: `source token<TAB>target tokens`, the always-kept ones on an empty source."""
    from autocompress.runtime.ct2_loop import read_vocabularies

    source_tokens, target_tokens = read_vocabularies(directory)
    manifest = Manifest.read(directory)
    kept = manifest.target_ids  # a trimmed vocabulary: its tokens are the kept ones, in their order
    names = {tid: token for tid, token in zip(kept or range(len(target_tokens)), target_tokens, strict=True)}

    def tokens(ids: Any) -> str:
        return " ".join(names[int(i)] for i in ids if int(i) in names)

    lines = [f"\t{tokens(table['frequent'][:frequent].tolist())}"]
    top = table["top"][:, :top_k].tolist()
    for source_id, token in enumerate(source_tokens[: len(top)]):
        candidates = tokens(i for i in top[source_id] if i >= 0)
        if candidates and " " not in token and "\t" not in token:
            lines.append(f"{token}\t{candidates}")
    (directory / VMAP_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
