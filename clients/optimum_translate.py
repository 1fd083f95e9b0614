"""Translate with Optimum's ORTModelForSeq2SeqLM (run in its own environment: transformers < 4.58).

    optimum-venv/bin/python optimum_translate.py ARTIFACT_DIR ENCODER_FILE [MAX_NEW_TOKENS] < sentences

The merged decoder is found by Optimum's own file pattern (naming decoder_file_name would make it look for the
un-merged pair instead).

Prints one JSON line a sentence: {"ids": [...], "source_ids": [...], "text": "..."} (greedy, one sentence a call).
"""

import json
import sys

from optimum.onnxruntime import ORTModelForSeq2SeqLM
from transformers import AutoTokenizer

directory, encoder = sys.argv[1:3]
max_new_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 64
tokenizer = AutoTokenizer.from_pretrained(directory)
model = ORTModelForSeq2SeqLM.from_pretrained(
    directory, subfolder="onnx", encoder_file_name=encoder, use_merged=True, use_cache=True
)
for sentence in sys.stdin.read().splitlines():
    if not sentence:
        continue
    inputs = tokenizer(sentence, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    ids = [int(t) for t in output[0]]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    print(json.dumps({"ids": ids, "source_ids": [int(t) for t in inputs["input_ids"][0]], "text": text}), flush=True)
