"""What the teacher's translations of the training data say about the target vocabulary, built once per (teacher,
data, translation settings) and cached like the other teacher artifacts: how often each target token occurs (what
vocabulary trimming keeps, passes/vocabulary.py) and a lexical translation table (what shortlists draw on,
passes/shortlist.py).

The table pairs the training sources with both what the references and what the teacher's translations of them hold:
for each source token, the target tokens ranked by their translation probability p(t|s) under IBM Model 1 (what
fast_align-built Bergamot shortlists rank by; a frequent word is explained by the NULL word rather than by every source
word), and the target tokens by frequency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from autocompress.teacher.context import TeacherContext

# Candidates kept per source token in the cached table. A trial's top_k of them are taken after the frequent ones are
# set aside, so the table is wider than the largest top_k.
TABLE_WIDTH = 250
IBM1_ITERATIONS = 5
CHUNK_SENTENCES = 2000  # sentence pairs whose links are held at once while the table is built
# The least p(t|s) a source token's candidate may have (Marian's shortlist threshold): the table keeps, per source
# token, how many of its ranked candidates reach each of these, so a trial picks one without the probabilities.
MIN_PROBS = (0.0, 0.001, 0.01, 0.03, 0.1)


def target_token_counts(ctx: TeacherContext) -> torch.Tensor:
    """How often each target id occurs in the training references and in the teacher's translations of them; built
    once per (teacher, data, translation settings) and cached like the other teacher artifacts."""

    def build() -> dict[str, torch.Tensor]:
        _, translations = ctx.teacher_translations()
        references = ctx.tokenizer(text_target=list(ctx.train.references), truncation=True, max_length=512)
        size = ctx.teacher.get_output_embeddings().out_features
        counts = torch.zeros(size, dtype=torch.int64)
        for rows in (translations, references["input_ids"]):
            flat = torch.tensor([t for row in rows for t in row], dtype=torch.int64)
            counts += torch.bincount(flat[flat < size], minlength=size)
        return {"counts": counts.to(torch.int32)}

    return ctx.cached("target_token_counts", ctx.translations_key(), build)["counts"]


def shortlist_table(ctx: TeacherContext) -> dict[str, torch.Tensor]:
    """`top` (source vocabulary × TABLE_WIDTH target ids, most probable translation first by IBM Model 1, -1 past the
    end), `reaching` (source vocabulary × MIN_PROBS: how many of its candidates have p(t|s) ≥ each) and `frequent`
    (target ids by the number of sentences they occur in), built once per teacher and data."""

    def build() -> dict[str, torch.Tensor]:
        sources, translations = ctx.teacher_translations()
        references = ctx.tokenizer(text_target=list(ctx.train.references), truncation=True, max_length=512)
        source_size = ctx.teacher.get_input_embeddings().num_embeddings
        target_size = ctx.teacher.get_output_embeddings().out_features
        targets = translations + references["input_ids"]
        top, reaching = lexical_ranking(sources + sources, targets, source_size, target_size, TABLE_WIDTH, ctx.log)
        frequency = np.zeros(target_size, dtype=np.int64)
        for row in targets:
            frequency[np.unique([t for t in row if 0 <= t < target_size])] += 1
        frequent = np.lexsort((np.arange(target_size), -frequency)).astype(np.int32)
        narrow = (
            np.int16 if target_size <= np.iinfo(np.int16).max else np.int32
        )  # half the cache for small vocabularies
        return {
            "top": torch.from_numpy(top.astype(narrow)),
            "reaching": torch.from_numpy(reaching.astype(np.int32)),
            "frequent": torch.from_numpy(frequent),
        }

    return ctx.cached("shortlist_table", table_key(ctx), build)


def table_key(ctx: TeacherContext) -> dict[str, Any]:
    """The settings the lexical table is cached by."""
    return {
        **ctx.translations_key(),
        "ranking": "ibm1",
        "iterations": IBM1_ITERATIONS,
        "width": TABLE_WIDTH,
        "min_probs": MIN_PROBS,
    }


def lexical_ranking(
    sources: list[list[int]],
    targets: list[list[int]],
    source_size: int,
    target_size: int,
    width: int,
    log: Any = lambda _message: None,
) -> tuple[np.ndarray, np.ndarray]:
    """Source vocabulary × `width`: each source token's target tokens by p(t|s) of IBM Model 1 (EM over the sentence
    pairs, a NULL source in every sentence to take the words no source word explains), -1 past the pairs it occurs
    in; and source vocabulary × MIN_PROBS: how many of them reach each probability. Against the Dice coefficient of
    shared sentences it replaced, on the demo (dev sentences whose teacher translation the shortlist covers whole, and
    candidates a sentence): 10+100 44 % against 22 % (245 and 255),
    25+300 72 % against 57 % (591 and 634), 50+300 79 % against 67 % (770 and 837)."""
    null = source_size  # one more source row: the NULL word
    chunks, keys = _cooccurrences(sources, targets, null, target_size)
    prob = np.zeros(len(keys))
    source_of = keys // target_size
    prob[:] = 1.0 / np.bincount(source_of, minlength=null + 1)[source_of]  # uniform over what co-occurs
    for iteration in range(IBM1_ITERATIONS):
        counts = np.zeros(len(keys))
        for position, group, groups in chunks:
            p = prob[position]
            counts += np.bincount(position, weights=p / np.bincount(group, p, groups)[group], minlength=len(keys))
        totals = np.bincount(source_of, weights=counts, minlength=null + 1)
        prob = counts / np.maximum(totals[source_of], 1e-30)
        log(f"shortlist: IBM Model 1 iteration {iteration + 1} of {IBM1_ITERATIONS}")
    real = source_of < null
    source, target, prob = source_of[real], (keys % target_size)[real], prob[real]
    order = np.lexsort((target, -prob, source))
    source, target = source[order], target[order]
    rank = np.arange(len(order)) - np.searchsorted(source, source)  # place within its source token's list
    top = np.full((source_size, width), -1, dtype=np.int64)
    kept = rank < width
    top[source[kept], rank[kept]] = target[kept]
    reaching = np.stack(
        [np.bincount(source[(prob[order] >= p) & kept], minlength=source_size) for p in MIN_PROBS], axis=1
    )
    return top, reaching


def _cooccurrences(
    sources: list[list[int]], targets: list[list[int]], null: int, target_size: int
) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], np.ndarray]:
    """The (source, target) pairs met in some sentence as sorted keys source × target_size + target, and per chunk
    of sentences each link's key index with its group (one target token of one sentence, over which EM normalises)."""
    raw: list[tuple[np.ndarray, np.ndarray, int]] = []
    for start in range(0, len(sources), CHUNK_SENTENCES):
        links, groups, offset = [], [], 0
        pairs = zip(sources[start : start + CHUNK_SENTENCES], targets[start : start + CHUNK_SENTENCES], strict=True)
        for src, tgt in pairs:
            s = np.unique(np.array([t for t in src if 0 <= t < null] + [null], dtype=np.int64))
            t = np.array([t for t in tgt if 0 <= t < target_size], dtype=np.int64)
            links.append((s[:, None] * target_size + t[None, :]).ravel())
            groups.append(np.tile(np.arange(len(t)), len(s)) + offset)
            offset += len(t)
        raw.append((np.concatenate(links), np.concatenate(groups).astype(np.int64), offset))
    keys = np.unique(np.concatenate([chunk[0] for chunk in raw]))
    return [(np.searchsorted(keys, link), group, count) for link, group, count in raw], keys
