"""Translate with an autocompress ONNX artifact using only onnxruntime, numpy and the tokenizer: greedy, KV cache.

The artifact is in Optimum's layout: onnx/encoder_model*.onnx, and onnx/decoder_model_merged*.onnx, whose
`use_cache_branch` input is False at the first step (it computes the cross-attention keys and values, returned as
present.N.encoder.*) and True afterwards (the past is fed back).

    python examples/minimal_onnx_translate.py ARTIFACT_DIR < source.txt > hypotheses.txt

Decodes exactly as autocompress measures BLEU (greedy, batches of 32 by length, max length 128), so sacrebleu on
its output reproduces the artifact's reported BLEU.
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

directory, batch_size, max_length = sys.argv[1], 32, 128
spec = json.load(open(f"{directory}/artifact.json"))
rules = spec["decoding"]
if spec.get("shortlist") or spec.get("target_ids"):
    sys.exit("this example runs artifacts with the whole output vocabulary: no shortlist, no trimming")
options = ort.SessionOptions()
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
files, structure, prefix = spec["files"], spec["structure"], spec["task"].get("source_prefix", "")
encoder = ort.InferenceSession(f"{directory}/{files['encoder']}", options, providers=["CPUExecutionProvider"])
decoder = ort.InferenceSession(f"{directory}/{files['decoder_merged']}", options, providers=["CPUExecutionProvider"])
tokenizer = AutoTokenizer.from_pretrained(directory)
outputs = [o.name for o in decoder.get_outputs()]


def greedy(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    (hidden,) = encoder.run(None, {"input_ids": ids, "attention_mask": mask})
    feed = {"encoder_attention_mask": mask, "encoder_hidden_states": hidden, "use_cache_branch": np.array([False])}
    for i, (own, cross) in enumerate(zip(structure["self_heads"], structure["cross_heads"], strict=True)):
        for part, heads in (("decoder", own), ("encoder", cross)):  # empty: the first step reads no past
            empty = np.zeros((len(ids), heads, 0, structure["head_dim"]), np.float32)
            feed[f"past_key_values.{i}.{part}.key"] = feed[f"past_key_values.{i}.{part}.value"] = empty
    tokens = np.full((len(ids), 1), spec["decoder_start_token_id"], np.int64)
    done, out = np.zeros(len(ids), bool), [tokens]
    for step in range(max_length):
        feed["input_ids"] = tokens
        results = dict(zip(outputs, decoder.run(None, feed), strict=True))
        logits = results["logits"][:, -1]
        logits[:, rules["suppressed_token_ids"]] = -np.inf
        forced = rules["forced_bos_token_id"] if step == 0 else None
        forced = (
            rules["forced_eos_token_id"]
            if step == max_length - 1 and rules["forced_eos_token_id"] is not None
            else forced
        )
        best = np.full(len(ids), forced) if forced is not None else logits.argmax(-1)
        chosen = np.where(done, spec["pad_token_id"], best)
        done |= chosen == spec["eos_token_id"]
        tokens = chosen[:, None].astype(np.int64)
        out.append(tokens)
        for name, value in results.items():  # the cross ones only from the first step: later they come back empty
            if name.startswith("present.") and (step == 0 or ".decoder." in name):
                feed["past_key_values" + name[len("present") :]] = value
        feed["use_cache_branch"] = np.array([True])
        if done.all():
            break
    return np.concatenate(out, axis=1)


lines = [line.rstrip("\n") for line in sys.stdin]
order = sorted(range(len(lines)), key=lambda i: len(lines[i]), reverse=True)
result = [""] * len(lines)
for start in range(0, len(order), batch_size):
    batch = order[start : start + batch_size]
    texts = [prefix + lines[i] for i in batch]  # a T5 task prefix, where the model has one
    enc = tokenizer(texts, return_tensors="np", padding=True, truncation=True, max_length=512)
    generated = greedy(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
    forced = rules["forced_bos_token_id"]  # the target-language token (M2M100/NLLB, MBart-50): not text
    rows = [[t for t in row if t != forced] for row in generated.tolist()]
    for i, text in zip(batch, tokenizer.batch_decode(rows, skip_special_tokens=True), strict=True):
        result[i] = text
sys.stdout.write("".join(text + "\n" for text in result))
