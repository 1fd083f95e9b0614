"""Generation with an exported ONNX artifact in onnxruntime: a lean batched greedy loop with the KV cache.

No transformers at run time beyond the tokenizer; the loop does per step one decoder call and an argmax. An
artifact with a lexical shortlist (autocompress.runtime.shortlist) projects the decoder's output onto the batch's
candidates here instead of in the graph.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocompress.runtime.base import ArtifactRuntime
from autocompress.runtime.beam import beam_search
from autocompress.runtime.rules import apply_rules
from autocompress.runtime.shortlist import OutputShortlist


def session_options(threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Shared cores: spinning threads starve each other (design notes: 1.5–1.8× slower), so they wait passively.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


FeedHook = Callable[[str, dict[str, np.ndarray]], None]


class DecoderState:
    """The decoder's feed between steps: past keys/values grow by one position a step and follow beam reordering."""

    def __init__(self, runtime: OnnxSeq2Seq, feed: dict[str, np.ndarray], on_feed: FeedHook | None) -> None:
        self.runtime, self.feed, self.on_feed = runtime, feed, on_feed

    def step(self, tokens: np.ndarray) -> np.ndarray:
        self.feed["input_ids"] = tokens
        if self.on_feed is not None:
            self.on_feed("decoder", dict(self.feed))
        results = dict(zip(self.runtime.output_names, self.runtime.decoder.run(None, self.feed), strict=True))
        for name, value in results.items():
            if name.startswith("present_"):
                self.feed[name.replace("present", "past")] = value
        shortlist = self.runtime.shortlist
        return shortlist.logits(results["decoder_hidden"]) if shortlist is not None else results["logits"]

    def reorder(self, rows: np.ndarray) -> None:
        for name in self.feed:
            if name.startswith("past_"):
                self.feed[name] = self.feed[name][rows]


class OnnxSeq2Seq(ArtifactRuntime):
    def __init__(
        self, directory: Path, threads: int | None = None, providers: Sequence[str] = ("CPUExecutionProvider",)
    ) -> None:
        import onnxruntime as ort

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        super().__init__(directory)
        if self.manifest.runtime != "onnxruntime":
            raise ValueError(f"{directory} is a {self.manifest.runtime} artifact, not an onnxruntime one")
        options = session_options(threads)
        self.encoder = ort.InferenceSession(
            str(self.directory / self.manifest.files["encoder"]), options, providers=list(providers)
        )
        self.decoder = ort.InferenceSession(
            str(self.directory / self.manifest.files["decoder"]), options, providers=list(providers)
        )
        self.output_names = [o.name for o in self.decoder.get_outputs()]
        self.shortlist: OutputShortlist | None = None
        if self.manifest.shortlist:
            decoding = self.manifest.decoding
            always = (self.manifest.eos_token_id, decoding["forced_bos_token_id"], decoding["forced_eos_token_id"])
            self.shortlist = OutputShortlist(self.directory, always, threads)

    def start(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, copies: int = 1, on_feed: FeedHook | None = None
    ) -> DecoderState:
        """Run the encoder; the decoder state holds `copies` rows a sentence (beams), with an empty past."""
        encoder_feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if on_feed is not None:
            on_feed("encoder", encoder_feed)
        encoded = [np.repeat(a, copies, axis=0) for a in self.encoder.run(None, encoder_feed)]
        if self.shortlist is not None:
            self.shortlist.select(input_ids)
        rows = input_ids.shape[0] * copies
        feed = {
            "encoder_attention_mask": np.repeat(attention_mask, copies, axis=0),
            "encoder_hidden_states": encoded[0],
        }
        structure = self.manifest.structure
        for i, heads in enumerate(structure["self_heads"]):
            empty = np.zeros((rows, heads, 0, structure["head_dim"]), dtype=encoded[0].dtype)
            feed[f"past_key_{i}"], feed[f"past_value_{i}"] = empty, empty
            feed[f"cross_key_{i}"], feed[f"cross_value_{i}"] = encoded[1 + 2 * i], encoded[2 + 2 * i]
        return DecoderState(self, feed, on_feed)

    def generate_ids(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        max_new_tokens: int,
        beam: int = 1,
        on_feed: FeedHook | None = None,
        ignore_eos: bool = False,
    ) -> np.ndarray:
        """Token ids laid out as transformers' generate() returns them: decoder start, tokens, eos, then padding.
        on_feed(graph, inputs) sees every graph call (calibration records real traffic with it). ignore_eos decodes
        exactly max_new_tokens (greedy): latency of random-weight models, whose eos comes at random."""
        with self.shortlist.limited() if self.shortlist is not None else contextlib.nullcontext():
            if beam > 1:
                return beam_search(self, input_ids, attention_mask, max_new_tokens, beam)
            return self._greedy(input_ids, attention_mask, max_new_tokens, on_feed, ignore_eos)

    def _greedy(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        max_new_tokens: int,
        on_feed: FeedHook | None,
        ignore_eos: bool,
    ) -> np.ndarray:
        spec, batch = self.manifest, input_ids.shape[0]
        state = self.start(input_ids, attention_mask, on_feed=on_feed)
        tokens = np.full((batch, 1), spec.decoder_start_token_id, dtype=np.int64)
        finished = np.zeros(batch, dtype=bool)
        out = [tokens]
        for step in range(max_new_tokens):
            logits = apply_rules(state.step(tokens), spec.decoding, step, max_new_tokens)
            chosen = np.where(finished, spec.pad_token_id, logits.argmax(-1))
            if not ignore_eos:
                finished |= chosen == spec.eos_token_id
            tokens = chosen[:, None].astype(np.int64)
            out.append(tokens)
            if finished.all():
                break
        return np.concatenate(out, axis=1)
