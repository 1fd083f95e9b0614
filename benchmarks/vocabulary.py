"""The output vocabulary as a lever: the demo teacher's artifacts with the whole target vocabulary, trimmed to the
tokens the training data and the teacher's translations use (at least 1, 10, 100 times), and with lexical shortlists
(CTranslate2's vocabulary mapping), for CTranslate2 int8 and onnxruntime int8 (dynamic), side by side in one run.

Latency interleaved (each repeat times every system in turn; benchmarks.runtimes.interleaved): p50 over sentences of
the per-sentence median ms at batch 1, ms a sentence at batch 16, one thread. Dev greedy BLEU of each (sacrebleu,
whole dev set), its size on disk and the number of target tokens kept. Ratios are against the same runtime with the
whole vocabulary, measured in the same run. The onnxruntime loop has no shortlist yet. Writes
results/benchmarks/vocabulary.{md,csv}.

    python benchmarks/vocabulary.py [--sentences 32] [--repeats 5] [--counts 1,10,100] [--shortlists 10:100,50:500]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import write
from benchmarks.runtimes import interleaved

THREADS = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=32, help="dev sentences timed")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--counts", default="1,10,100", help="min_count values of the trimmed variants")
    parser.add_argument("--shortlists", default="10:100,25:500,50:2000", help="top_k:frequent of CT2 shortlists")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from autocompress.cache import ArtifactCache
    from autocompress.data import load_demo
    from autocompress.evaluate.bleu import score_translations
    from autocompress.export.ctranslate2 import export_ctranslate2
    from autocompress.export.manifest import update_manifest
    from autocompress.export.onnx import export_onnx
    from autocompress.model.load import load_model
    from autocompress.model.vocabulary import trim_target
    from autocompress.passes.context import PassContext
    from autocompress.passes.precision import apply_artifact
    from autocompress.passes.shortlist import shortlist_table, write_vmap
    from autocompress.passes.vocabulary import target_token_counts
    from autocompress.recipe import PassConfig
    from autocompress.runtime import open_artifact
    from autocompress.task import special_ids

    hf_logging.disable_progress_bar()
    loaded = load_model("demo")
    ctx = PassContext(loaded.model, loaded.tokenizer, load_demo("train"), ArtifactCache(), task=loaded.task)
    counts = target_token_counts(ctx)
    dev = load_demo("dev")
    work = Path(tempfile.mkdtemp(prefix="vocabulary-bench-"))
    variants = {"whole": (loaded.model, len(counts))}
    for minimum in (int(c) for c in args.counts.split(",")):
        model = copy.deepcopy(loaded.model)
        used = (counts >= minimum).nonzero().flatten().tolist()
        kept = trim_target(model, set(used) | special_ids(loaded.tokenizer))
        variants[f"used ≥ {minimum}"] = (model, len(kept))
    systems = {}
    for name, (model, _) in variants.items():
        slug = name.replace(" ≥ ", "-min")
        systems[f"ctranslate2 int8, {name}"] = export_ctranslate2(
            model, loaded.tokenizer, work / f"ct2-{slug}", quantization="int8", task=loaded.task
        )
        fp32 = export_onnx(model, loaded.tokenizer, work / f"onnx-{slug}", task=loaded.task)
        systems[f"onnxruntime int8, {name}"] = apply_artifact(
            fp32, work / f"onnx-int8-{slug}", PassConfig.make("precision", {"dtype": "int8"})
        )
    table = shortlist_table(ctx)
    for item in args.shortlists.split(","):
        top_k, frequent = (int(v) for v in item.split(":"))
        name = f"shortlist {top_k}+{frequent}"
        target = work / f"ct2-shortlist-{top_k}-{frequent}"
        shutil.copytree(systems["ctranslate2 int8, whole"], target)
        write_vmap(target, table, top_k, frequent)
        update_manifest(target, shortlist={"top_k": top_k, "frequent": frequent, "file": "vmap.txt"})
        systems[f"ctranslate2 int8, {name}"] = target
        variants[name] = (None, len(counts))
    runtimes = {name: open_artifact(path, threads=THREADS) for name, path in systems.items()}

    def runner(runtime: object) -> object:
        def run(texts: list[str], _forced: int | None) -> int:
            ids, mask = runtime.encode(texts)
            return len(runtime.generate_ids(ids, mask, 128))

        return run

    texts = list(dev.sources[: args.sentences])
    timed = interleaved({name: runner(r) for name, r in runtimes.items()}, texts, None, args.repeats)
    rows = []
    for name, runtime in runtimes.items():
        engine, variant = name.split(", ")
        base = timed[f"{engine}, whole"]
        bleu, _ = score_translations(runtime.translate(list(dev.sources), batch_size=32), list(dev.references))
        size = sum(f.stat().st_size for f in systems[name].iterdir() if f.suffix in (".onnx", ".bin"))
        rows.append(
            {
                "runtime": engine,
                "target vocabulary": variant,
                "tokens kept": variants[variant][1],
                "p50 ms (batch 1)": timed[name]["p50_ms_b1"],
                "p50 speed-up": round(base["p50_ms_b1"] / timed[name]["p50_ms_b1"], 2),
                "ms/sentence (batch 16)": timed[name]["ms_per_sentence_b16"],
                "batch-16 speed-up": round(base["ms_per_sentence_b16"] / timed[name]["ms_per_sentence_b16"], 2),
                "dev BLEU": round(bleu.score, 2),
                "size (MB)": round(size / 1e6, 2),
            }
        )
    frame = pd.DataFrame(rows)
    table = write(
        "vocabulary",
        frame,
        "The output vocabulary: whole against trimmed, same runtime, one run",
        __doc__.split("\n\n")[0].replace("\n", " "),
        [f"BLEU: {bleu.signature}. Timed on {len(texts)} dev sentences, {args.repeats} interleaved repeats."],
    )
    print(table)


if __name__ == "__main__":
    main()
