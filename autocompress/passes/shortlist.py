"""A lexical shortlist: per sentence, the output projection scores only the target tokens its source tokens make
likely, plus the most frequent ones (Marian/Bergamot's `lex.s2t`, CTranslate2's vocabulary mapping).

The table is built once per (teacher, data) from the training sources and both what the references and what the
teacher's translations of them hold: for each source token, the target tokens ranked by their translation
probability p(t|s) under IBM Model 1 (what fast_align-built Bergamot shortlists rank by; a frequent word is explained
by the NULL word rather than by every source word), and the target tokens by frequency; cached like the other
teacher artifacts. A trial picks how many of each it keeps: the `frequent` most frequent tokens, and for each source
token its best `top_k` among the others (a frequent token is a candidate anyway, so it takes no place in a source
token's list). CTranslate2 runs it through its vocabulary mapping (vmap.txt beside the model, `use_vmap`); an
onnxruntime artifact keeps its output projection beside a decoder graph that stops before it, and our loop scores the
batch's candidates only (autocompress.runtime.shortlist). Candidates are the union over a batch, so a shortlisted
artifact is scored at the batch it is deployed at (evaluate.quality).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autocompress.export.manifest import Manifest, update_manifest
from autocompress.passes.base import ArtifactBuild, Param, Pass

if TYPE_CHECKING:
    from autocompress.passes.context import PassContext
    from autocompress.recipe import PassConfig

# Candidates kept per source token in the cached table. A trial's top_k of them are taken after the frequent ones are
# set aside, so the table is wider than the largest top_k.
TABLE_WIDTH = 250
IBM1_ITERATIONS = 5
CHUNK_SENTENCES = 2000  # sentence pairs whose links are held at once while the table is built
MAX_K = 100
# The least p(t|s) a source token's candidate may have (Marian's shortlist threshold): the table keeps, per source
# token, how many of its ranked candidates reach each of these, so a trial picks one without the probabilities.
MIN_PROBS = (0.0, 0.001, 0.01, 0.03, 0.1)
VMAP_FILE = "vmap.txt"
PARAMS = (
    Param(
        "top_k",
        "int",
        0,
        "candidates per source token beyond the frequent ones, by IBM Model 1 p(t|s) (0: no shortlist)",
        low=0,
        high=100,
    ),
    Param(
        "frequent",
        "int",
        100,
        "the most frequent target tokens, always candidates",
        low=0,
        high=10000,
        when=(("top_k", tuple(range(1, MAX_K + 1))),),
    ),
    Param(
        "min_prob",
        "categorical",
        0.0,
        "the least IBM Model 1 p(t|s) of a source token's candidate: rare words keep fewer (0: its top_k whatever "
        "their probability); fewer candidates, a faster projection and a smaller vmap.txt",
        choices=MIN_PROBS,
        when=(("top_k", tuple(range(1, MAX_K + 1))),),
    ),
)


class Shortlist(Pass):
    name = "shortlist"
    stage = "artifact"
    params = PARAMS

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("top_k", 0) == 0

    def apply(self, subject: ArtifactBuild, config: PassConfig, ctx: PassContext | None) -> None:
        if self.is_noop(config.as_dict()):
            return
        if ctx is None:
            raise RuntimeError("the shortlist needs the teacher's pass context for its table")
        lists = Lists(config["top_k"], config["frequent"], config["min_prob"])
        add_shortlist(subject.out, subject.student, shortlist_table(ctx), lists)


@dataclass(frozen=True)
class Lists:
    """How much of the table a shortlist takes: each source token's best `top_k` beyond the `frequent` most frequent
    target tokens, those of them whose p(t|s) reaches `min_prob`."""

    top_k: int
    frequent: int
    min_prob: float = 0.0


def add_shortlist(directory: Path, student: Any, table: dict[str, torch.Tensor], lists: Lists) -> None:
    """Give the artifact in `directory` (of `student`) the shortlist `lists` takes from `table`, in the form its
    runtime reads."""
    if Manifest.read(directory).runtime == "ctranslate2":
        write_vmap(directory, table, lists)
        file = VMAP_FILE
    else:
        file = write_onnx_shortlist(directory, student, table, lists).name
    update_manifest(directory, shortlist={**asdict(lists), "file": file})


def shortlist_table(ctx: PassContext) -> dict[str, torch.Tensor]:
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


def table_key(ctx: PassContext) -> dict[str, Any]:
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


def candidates(table: dict[str, torch.Tensor], lists: Lists) -> tuple[np.ndarray, np.ndarray]:
    """(the `frequent` most frequent target ids, source id × top_k: each source token's best target ids that are not
    among them and reach min_prob, -1 where it has fewer), in the teacher's ids."""
    always = table["frequent"][: lists.frequent].numpy().astype(np.int64)
    ranked = table["top"].numpy().astype(np.int64)
    reaching = table["reaching"][:, MIN_PROBS.index(lists.min_prob)].numpy()
    keep = (ranked >= 0) & ~np.isin(ranked, always) & (np.arange(ranked.shape[1]) < reaching[:, None])
    # stable order of the kept ones: their rank among the kept, so a row's first top_k kept entries come first
    order = np.argsort(~keep, axis=1, kind="stable")[:, : lists.top_k]
    chosen = np.take_along_axis(ranked, order, axis=1)
    return always, np.where(np.take_along_axis(keep, order, axis=1), chosen, -1)


def write_onnx_shortlist(directory: Path, student: Any, table: dict[str, torch.Tensor], lists: Lists) -> Path:
    """The decoder step graph made to stop at `decoder_hidden`, and the projection with the candidates beside it."""
    from autocompress.runtime import shortlist

    manifest = Manifest.read(directory)
    drop_logits(directory / manifest.files["decoder_step"])  # before autocompress.export.layout merges it
    head = student.get_output_embeddings()
    weight = head.weight.detach().float().numpy()
    bias = np.zeros(weight.shape[0], dtype=np.float32)
    for extra in (head.bias, getattr(student, "final_logits_bias", None)):  # Marian, MBart: on the logits
        if extra is not None:
            bias += extra.detach().float().numpy().reshape(-1)
    # The table speaks the teacher's ids; a trimmed artifact's output ids are positions in its target_ids
    output_id = np.full(max(len(table["frequent"]), weight.shape[0]), -1, dtype=np.int64)
    kept = manifest.target_ids
    output_id[kept if kept is not None else np.arange(weight.shape[0])] = np.arange(weight.shape[0])
    always, top = candidates(table, lists)
    top = np.where(top >= 0, output_id[np.maximum(top, 0)], -1)
    always = output_id[always]
    return shortlist.write(directory, weight, bias, top, always[always >= 0], manifest.dtype)


def drop_logits(path: Path) -> None:
    """Remove the `logits` output and every node and weight only it needed (the output projection)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    outputs = [o for o in graph.output if o.name != "logits"]
    if "decoder_hidden" not in {o.name for o in outputs}:
        raise RuntimeError(f"{path} has no decoder_hidden output: export it again with this version of autocompress")
    needed, kept = {o.name for o in outputs}, []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    initializers = [i for i in graph.initializer if i.name in needed]
    external = any(i.data_location == onnx.TensorProto.EXTERNAL for i in initializers)
    del graph.node[:], graph.initializer[:], graph.output[:]
    graph.node.extend(reversed(kept))
    graph.initializer.extend(initializers)
    graph.output.extend(outputs)
    onnx.save(model, str(path), save_as_external_data=external, location=f"{path.name}.data")


def write_vmap(directory: Path, table: dict[str, torch.Tensor], lists: Lists) -> None:
    """CTranslate2's vocabulary mapping: `source token<TAB>target tokens`, the always-kept ones on an empty source."""
    from autocompress.runtime.ct2_loop import read_vocabularies

    source_tokens, target_tokens = read_vocabularies(directory)
    manifest = Manifest.read(directory)
    kept = manifest.target_ids  # a trimmed vocabulary: its tokens are the kept ones, in their order
    names = {tid: token for tid, token in zip(kept or range(len(target_tokens)), target_tokens, strict=True)}

    def tokens(ids: Any) -> str:
        return " ".join(names[int(i)] for i in ids if int(i) in names)

    always, top_ids = candidates(table, lists)
    lines = [f"\t{tokens(always.tolist())}"]
    top = top_ids.tolist()
    for source_id, token in enumerate(source_tokens[: len(top)]):
        listed = tokens(i for i in top[source_id] if i >= 0)
        if listed and " " not in token and "\t" not in token:
            lines.append(f"{token}\t{listed}")
    (directory / VMAP_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
