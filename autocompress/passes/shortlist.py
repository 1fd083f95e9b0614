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

from autocompress.manifest import Manifest, update_manifest
from autocompress.passes.base import ArtifactBuild, ArtifactPass, Param, TeacherLayers
from autocompress.teacher.lexicon import MIN_PROBS

if TYPE_CHECKING:
    from autocompress.passes.recipe import PassConfig

MAX_K = 100  # the widest top_k a trial may take; the table (teacher/lexicon.py) is wider
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


class Shortlist(ArtifactPass):
    name = "shortlist"
    stage = "artifact"
    params = PARAMS

    def needs(self, values: dict[str, tuple[Any, ...]]) -> tuple[str, ...]:
        # the lexical table pairs the translations' tokens with the source tokens
        return ("teacher_translations", "shortlist_table") if any(v != 0 for v in values.get("top_k", ())) else ()

    def describe(self, params: dict[str, Any], recipe: dict[str, dict[str, Any]], layers: TeacherLayers) -> str | None:
        least = f" p≥{params['min_prob']:g}" if params.get("min_prob") else ""
        return f"shortlist {params.get('top_k')}+{params.get('frequent')}{least}"

    def is_noop(self, params: dict[str, Any]) -> bool:
        return params.get("top_k", 0) == 0

    def apply(self, subject: ArtifactBuild, config: PassConfig) -> None:
        if self.is_noop(config.as_dict()):
            return
        if subject.teacher is None:
            raise RuntimeError("the shortlist needs the teacher's context for its table")
        lists = Lists(config["top_k"], config["frequent"], config["min_prob"])
        add_shortlist(subject.out, subject.student, subject.teacher.shortlist_table(), lists)


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
