"""The output vocabulary as a lever: the demo teacher's artifacts with the whole target vocabulary, trimmed to the
tokens the training data and the teacher's translations use (at least 1, 10, 100 times), and with lexical shortlists
(top_k candidates a source token plus the most frequent ones: CTranslate2's vocabulary mapping, our onnxruntime
loop's candidate projection), for CTranslate2 int8 and onnxruntime int8 (dynamic), side by side in one run; then the
same shortlists on an OPUS-MT-sized Marian (benchmarks.runtimes: d_model 512, 6+6 layers, 58,101 target tokens,
random weights, every output forced to 30 tokens: speed only; the demo's table, whose ids are the first 8,000 of its
vocabulary).

Latency interleaved per model (each repeat times every system in turn; benchmarks.runtimes.interleaved): p50 over
sentences of the per-sentence median ms at batch 1, ms a sentence at batch 16, one thread. Dev greedy BLEU of each
demo artifact at batch 1, as deployed and timed (sacrebleu, whole dev set), its size on disk and the number of target
tokens kept. Ratios are against the same runtime with the whole vocabulary, measured in the same run. Writes
results/benchmarks/vocabulary.{md,csv}.

    python benchmarks/vocabulary.py [--models demo,opus] [--sentences 32] [--repeats 5] [--counts 1,10,100]
                                    [--shortlists 10:100,10:300,25:300,50:300,25:700,50:2000,25:300:0.01,...]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import write
from benchmarks.runtimes import FORCED, interleaved, opus_sized_marian

THREADS = 1
ENGINES = {"ctranslate2 int8": "ct2", "onnxruntime int8": "onnx-int8"}


def artifacts(model: Any, tokenizer: Any, task: Any, work: Path, slug: str) -> dict[str, Path]:
    """The model's CTranslate2 int8 and onnxruntime int8 (dynamic) artifacts."""
    from autocompress.export.ctranslate2 import export_ctranslate2
    from autocompress.export.onnx import export_onnx
    from autocompress.export.quantize import quantize_onnx

    fp32 = export_onnx(model, tokenizer, work / f"onnx-{slug}", task=task)
    return {
        "ctranslate2 int8": export_ctranslate2(model, tokenizer, work / f"ct2-{slug}", quantization="int8", task=task),
        "onnxruntime int8": quantize_onnx(fp32, work / f"onnx-int8-{slug}", {"dtype": "int8"}),
    }


def with_shortlists(
    systems: dict[str, Path], model: Any, table: Any, shortlists: str, work: Path, prefix: str
) -> dict[str, str]:
    """Copies of each engine's whole-vocabulary artifact, each given a shortlist; returns name → variant."""
    from autocompress.passes.shortlist import Lists, add_shortlist

    variants = {}
    for item in shortlists.split(","):
        top_k, frequent, *least = item.split(":")
        lists = Lists(int(top_k), int(frequent), float(least[0]) if least else 0.0)
        variant = f"shortlist {top_k}+{frequent}" + (f" p≥{lists.min_prob:g}" if lists.min_prob else "")
        for engine in ENGINES:
            target = work / f"{prefix}-{ENGINES[engine]}-shortlist-{'-'.join([top_k, frequent, *least])}"
            shutil.copytree(systems[f"{engine}, whole"], target)
            add_shortlist(target, model, table, lists)
            systems[f"{engine}, {variant}"] = target
            variants[f"{engine}, {variant}"] = variant
    return variants


def runner(runtime: Any, forced: int | None) -> Any:
    def run(texts: list[str], _forced: int | None) -> int:
        ids, mask = runtime.encode(texts)
        return len(runtime.generate_ids(ids, mask, forced or 128, ignore_eos=forced is not None))

    return run


def size_mb(directory: Path) -> float:
    """What the search counts (autocompress.evaluate.size: what the loop reads, vmap.txt included), in MB."""
    from autocompress.evaluate.size import artifact_size

    return round(artifact_size(directory)["size_mb"].value * 2**20 / 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,opus", help="demo, opus or both")
    parser.add_argument("--sentences", type=int, default=32, help="dev sentences timed")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--counts", default="1,10,100", help="min_count values of the trimmed variants")
    parser.add_argument(
        "--shortlists",
        default="10:100,10:300,25:300,50:300,25:700,50:2000,25:300:0.01,50:300:0.01",
        help="top_k:frequent[:min_prob] of the shortlists",
    )
    args = parser.parse_args()

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from autocompress.cache import ArtifactCache
    from autocompress.data import load_demo
    from autocompress.evaluate.bleu import score_translations
    from autocompress.model.load import load_model
    from autocompress.model.vocabulary import trim_target
    from autocompress.runtime import open_artifact
    from autocompress.task import special_ids
    from autocompress.teacher.context import TeacherContext

    hf_logging.disable_progress_bar()
    loaded = load_model("demo")
    ctx = TeacherContext(loaded.model, loaded.tokenizer, load_demo("train"), ArtifactCache(), task=loaded.task)
    table = ctx.shortlist_table()
    dev = load_demo("dev")
    texts = list(dev.sources[: args.sentences])
    work = Path(tempfile.mkdtemp(prefix="vocabulary-bench-"))
    rows: list[dict[str, Any]] = []
    bleu_signature = ""
    for name in args.models.split(","):
        systems: dict[str, Path] = {}
        variants: dict[str, str] = {}
        kept: dict[str, int] = {}
        if name == "demo":
            counts = ctx.target_token_counts()
            models = {"whole": loaded.model}
            for minimum in (int(c) for c in args.counts.split(",")):
                model = copy.deepcopy(loaded.model)
                used = (counts >= minimum).nonzero().flatten().tolist()
                kept[f"used ≥ {minimum}"] = len(trim_target(model, set(used) | special_ids(loaded.tokenizer)))
                models[f"used ≥ {minimum}"] = model
            for variant, model in models.items():
                slug = "demo-" + variant.replace(" ≥ ", "-min")
                for engine, path in artifacts(model, loaded.tokenizer, loaded.task, work, slug).items():
                    systems[f"{engine}, {variant}"], variants[f"{engine}, {variant}"] = path, variant
            base_model, forced = loaded.model, None
        else:
            model_dir = opus_sized_marian(work / "opus-model")
            base_model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            for engine, path in artifacts(base_model, tokenizer, None, work, "opus").items():
                systems[f"{engine}, whole"], variants[f"{engine}, whole"] = path, "whole"
            forced = FORCED
        variants.update(with_shortlists(systems, base_model, table, args.shortlists, work, name))
        runtimes = {system: open_artifact(path, threads=THREADS) for system, path in systems.items()}
        print(f"{name}: timing {len(runtimes)} artifacts", flush=True)
        timed = interleaved({s: runner(r, forced) for s, r in runtimes.items()}, texts, None, args.repeats)
        for system, runtime in runtimes.items():
            engine, variant = system.split(", ")
            base = timed[f"{engine}, whole"]
            bleu = None
            if forced is None:
                # at batch 1, as timed: a shortlist's candidates are the union over a batch (evaluate.quality)
                hyps = runtime.translate(list(dev.sources), batch_size=1)
                score, _ = score_translations(hyps, list(dev.references))
                bleu, bleu_signature = round(score.score, 2), score.signature
            vocabulary = base_model.get_output_embeddings().out_features
            rows.append(
                {
                    "model": name,
                    "runtime": engine,
                    "target vocabulary": variant,
                    "tokens kept": kept.get(variant, vocabulary),
                    "p50 ms (batch 1)": timed[system]["p50_ms_b1"],
                    "p50 speed-up": round(base["p50_ms_b1"] / timed[system]["p50_ms_b1"], 2),
                    "ms/sentence (batch 16)": timed[system]["ms_per_sentence_b16"],
                    "batch-16 speed-up": round(base["ms_per_sentence_b16"] / timed[system]["ms_per_sentence_b16"], 2),
                    "dev BLEU": bleu,
                    "size (MB)": size_mb(systems[system]),
                }
            )
    frame = pd.DataFrame(rows)
    printed = write(
        "vocabulary",
        frame,
        "The output vocabulary: whole against trimmed and shortlisted, same runtime, one run per model",
        __doc__.split("\n\n")[0].replace("\n", " "),
        [
            f"BLEU: {bleu_signature}. Timed on {len(texts)} dev sentences, {args.repeats} interleaved repeats, "
            f"{THREADS} thread; the OPUS-sized rows decode exactly {FORCED} tokens a sentence (no BLEU)."
        ],
    )
    print(printed)


if __name__ == "__main__":
    main()
