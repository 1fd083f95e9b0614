"""Runtimes side by side: PyTorch fp32 generate(), ORT fp32 / int8 / int4, CTranslate2 int8.

Two models: the demo teacher (real decoding of dev verses) and an OPUS-MT-sized Marian built from a config (d_model
512, 6+6 layers, 8 heads, FFN 2048, vocabulary 58k, random weights, so every output is forced to 30 tokens).
Latency is interleaved — every repeat times each system in turn — and the medians are compared: p50 ms a sentence
at batch 1 and at batch 16 (a batch's time divided by its sentences), with the ratio to PyTorch. Peak RSS is measured
in a fresh process per system; size on disk is the weights each deploys. Writes results/runtimes.json and .md.

    python benchmarks/runtimes.py [--models demo,opus] [--repeats 5] [--sentences 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent.parent / "results"
SYSTEMS = ("pytorch-fp32", "ort-fp32", "ort-int8", "ort-int4", "ct2-int8")
FORCED = 30


def opus_sized_marian(out: Path) -> Path:
    """Random OPUS-MT-sized Marian with the demo tokenizer's pieces plus filler tokens up to a 58,101 vocabulary."""
    from transformers import MarianConfig, MarianMTModel

    from autocompress.model.load import DEMO_MODEL, load_tokenizer

    tokenizer = load_tokenizer(DEMO_MODEL)
    vocab = dict(tokenizer.get_vocab())
    vocab.update({f"<filler_{i}>": i for i in range(len(vocab), 58101)})
    out.mkdir(parents=True, exist_ok=True)
    for name in ("source.spm", "target.spm"):
        (out / name).write_bytes((DEMO_MODEL / name).read_bytes())
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    from transformers import MarianTokenizer

    big = MarianTokenizer(
        str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"), source_lang="en", target_lang="es"
    )
    config = MarianConfig(
        vocab_size=58101,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        max_position_embeddings=512,
        share_encoder_decoder_embeddings=True,
    )
    torch.manual_seed(0)
    MarianMTModel(config).eval().save_pretrained(out)
    big.save_pretrained(out)
    return out


def build_systems(model_dir: Path, work: Path, threads: int) -> dict[str, dict]:
    """Each system: its artifact path, its size on disk, and a loader returning run(batch_texts, forced)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from autocompress.export.ctranslate2 import export_ctranslate2
    from autocompress.export.onnx import export_onnx
    from autocompress.export.quantize import quantize_onnx

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    fp32 = export_onnx(model, tokenizer, work / "ort-fp32")
    paths = {
        "pytorch-fp32": model_dir,
        "ort-fp32": fp32,
        "ort-int8": quantize_onnx(fp32, work / "ort-int8", {"dtype": "int8"}),
        "ort-int4": quantize_onnx(fp32, work / "ort-int4", {"dtype": "int4"}),
        "ct2-int8": export_ctranslate2(model, tokenizer, work / "ct2-int8", quantization="int8"),
    }
    sizes = {name: _weights_mb(path) for name, path in paths.items()}
    return {name: {"path": str(path), "size_mb": sizes[name]} for name, path in paths.items()}


def _weights_mb(path: Path) -> float:
    suffixes = (".onnx", ".data", ".bin", ".safetensors", ".npz")
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.name.endswith(suffixes)) / 2**20, 2)


def runner(system: str, path: str, threads: int) -> Callable[[list[str], int | None], int]:
    """run(texts, forced) translates one batch and returns the number of generated tokens."""
    if system == "pytorch-fp32":
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        torch.set_num_threads(threads)
        model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)

        @torch.inference_mode()
        def run_torch(texts: list[str], forced: int | None) -> int:
            enc = tokenizer(texts, return_tensors="pt", padding=True)
            limits = {"min_new_tokens": forced, "max_new_tokens": forced} if forced else {"max_new_tokens": 128}
            out = model.generate(**enc, num_beams=1, do_sample=False, **limits)
            return int((out[:, 1:] != tokenizer.pad_token_id).sum())

        return run_torch
    if system.startswith("ort"):
        from autocompress.runtime.onnx_loop import OnnxSeq2Seq

        ort_runtime = OnnxSeq2Seq(Path(path), threads=threads)

        def run_ort(texts: list[str], forced: int | None) -> int:
            input_ids, mask = ort_runtime.encode(texts, 512)
            ids = ort_runtime.generate_ids(input_ids, mask, forced or 128, ignore_eos=forced is not None)
            return int((ids[:, 1:] != ort_runtime.manifest.pad_token_id).sum())

        return run_ort
    from autocompress.runtime.ct2_loop import CT2Seq2Seq

    ct2 = CT2Seq2Seq(Path(path), threads=threads)

    def run_ct2(texts: list[str], forced: int | None) -> int:
        input_ids, mask = ct2.encode(texts, 512)
        rows = ct2.generate_ids(input_ids, mask, forced or 128, ignore_eos=forced is not None)
        return sum(len(row) for row in rows)

    return run_ct2


def peak_rss_mb(system: str, path: str, threads: int, texts: list[str], forced: int | None) -> float:
    """Translate one batch-16 pass in a fresh process and report its VmHWM."""
    root = str(Path(__file__).resolve().parent.parent)
    code = (
        f"import sys; sys.path.insert(0, {root!r}); from benchmarks.runtimes import runner; "
        f"run = runner({system!r}, {path!r}, {threads}); run({texts!r}, {forced!r}); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(done.stdout.strip().splitlines()[-1]) / 1024, 1)


def interleaved(runs: dict[str, Callable], texts: list[str], forced: int | None, repeats: int) -> dict[str, dict]:
    """Per system: p50 over sentences of the per-sentence median ms at batch 1, and ms a sentence at batch 16."""
    single = {name: np.zeros((repeats, len(texts))) for name in runs}
    batched: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run(texts[:1], forced)
        run(texts[:16], forced)
    for repeat in range(repeats):
        for name, run in runs.items():
            for i, text in enumerate(texts):
                started = time.perf_counter()
                run([text], forced)
                single[name][repeat, i] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            for start in range(0, len(texts), 16):
                run(texts[start : start + 16], forced)
            batched[name].append((time.perf_counter() - started) * 1000 / len(texts))
    return {
        name: {
            "p50_ms_b1": round(float(np.percentile(np.median(single[name], axis=0), 50)), 2),
            "p95_ms_b1": round(float(np.percentile(np.median(single[name], axis=0), 95)), 2),
            "ms_per_sentence_b16": round(float(np.median(batched[name])), 2),
        }
        for name in runs
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,opus", help="demo, opus, or model directories, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "runtimes.json")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from autocompress.data import load_demo
    from autocompress.model.load import DEMO_MODEL

    hf_logging.disable_progress_bar()
    texts = list(load_demo("dev").sources[: args.sentences])
    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "opus":
                model_dir, forced = opus_sized_marian(Path(tmp) / "opus-model"), FORCED
            else:  # "demo", or the directory of a trained model
                model_dir, forced = (DEMO_MODEL if name == "demo" else Path(name)), None
            systems = build_systems(model_dir, Path(tmp) / Path(name).name, args.threads)
            runs = {s: runner(s, info["path"], args.threads) for s, info in systems.items()}
            timings = interleaved(runs, texts, forced, args.repeats)
            base = timings["pytorch-fp32"]
            print(
                f"\n{name}: {len(texts)} dev sentences, {args.threads} threads, "
                f"{'outputs forced to ' + str(FORCED) + ' tokens' if forced else 'greedy decoding to eos'}, "
                f"interleaved medians of {args.repeats} repeats"
            )
            print(
                f"{'system':14s} {'p50 b1 ms':>10s} {'ratio':>6s} {'b16 ms/sent':>12s} {'ratio':>6s} "
                f"{'peak RSS MB':>12s} {'size MB':>8s}"
            )
            for system, info in systems.items():
                t = timings[system]
                info.update(t)
                info["ratio_b1"] = round(t["p50_ms_b1"] / base["p50_ms_b1"], 3)
                info["ratio_b16"] = round(t["ms_per_sentence_b16"] / base["ms_per_sentence_b16"], 3)
                info["peak_rss_mb"] = peak_rss_mb(system, info["path"], args.threads, texts[:16], forced)
                print(
                    f"{system:14s} {t['p50_ms_b1']:10.1f} {info['ratio_b1']:6.2f} {t['ms_per_sentence_b16']:12.1f} "
                    f"{info['ratio_b16']:6.2f} {info['peak_rss_mb']:12.1f} {info['size_mb']:8.1f}"
                )
                del info["path"]
            report[name] = systems
            del runs
    result = {
        "models": report,
        "threads": args.threads,
        "sentences": len(texts),
        "repeats": args.repeats,
        "forced_tokens_random_model": FORCED,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
