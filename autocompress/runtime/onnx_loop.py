"""Generation with an exported ONNX artifact in onnxruntime: a lean batched greedy loop with the KV cache.

No transformers at run time beyond the tokenizer; the loop does per step one decoder call and an argmax. It runs the
cross and step graphs a finished artifact keeps beside Optimum's merged decoder (faster than the merged graph's If:
autocompress.export.layout), or the merged decoder itself (`merged=True`). An artifact with a lexical shortlist
(autocompress.runtime.shortlist) projects the decoder's output onto the batch's candidates here instead of in the
graph.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocompress.errors import UserInputError
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
    """The decoder's feed between steps: the first step takes the cross-attention keys and values (computed by the
    cross graph, or by the merged graph's first-step branch), every step grows the self-attention past by one
    position, and beam search reorders the rows."""

    def __init__(self, runtime: OnnxSeq2Seq, feed: dict[str, np.ndarray], on_feed: FeedHook | None) -> None:
        self.runtime, self.feed, self.on_feed = runtime, feed, on_feed
        self.first = True

    def step(self, tokens: np.ndarray) -> np.ndarray:
        runtime, feed = self.runtime, self.feed
        feed["input_ids"] = tokens
        if runtime.merged:  # Optimum's decoder_model_merged: one graph, `use_cache_branch` False at the first step
            graph = "decoder_merged"
            feed["use_cache_branch"] = np.array([not self.first])
        else:
            graph = "decoder_step"
            if self.first:
                self._cross()
        inputs = {name: feed[name] for name in runtime.input_names[graph]}
        if self.on_feed is not None:
            self.on_feed(graph, dict(inputs))
        outputs = runtime.sessions[graph].run(None, inputs)
        results = dict(zip(runtime.output_names[graph], outputs, strict=True))
        for name, value in results.items():
            # the cross ones from the first step only: afterwards the merged graph returns them empty
            if name.startswith("present.") and (self.first or ".decoder." in name):
                feed[f"past_key_values{name[len('present') :]}"] = value
        self.first = False
        shortlist = runtime.shortlist
        if shortlist is not None:
            return shortlist.logits(results["decoder_hidden"][:, -1])
        return results["logits"][:, -1]

    def _cross(self) -> None:
        runtime = self.runtime
        inputs = {"encoder_hidden_states": self.feed["encoder_hidden_states"]}
        if self.on_feed is not None:
            self.on_feed("decoder_cross", dict(inputs))
        outputs = runtime.sessions["decoder_cross"].run(None, inputs)
        for name, value in zip(runtime.output_names["decoder_cross"], outputs, strict=True):
            self.feed[f"past_key_values{name[len('present') :]}"] = value

    def reorder(self, rows: np.ndarray) -> None:
        for name in self.feed:
            if name.startswith("past_key_values."):
                self.feed[name] = self.feed[name][rows]


class OnnxSeq2Seq(ArtifactRuntime):
    """Runs an artifact's encoder, cross and step graphs, or its encoder and merged decoder (Optimum's layout,
    autocompress.export.layout) where it has no step graph."""

    def __init__(
        self,
        directory: Path,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        merged: bool = False,
    ) -> None:
        """merged: run the merged decoder (what other loaders run) even where the cross and step graphs are there."""
        import onnxruntime as ort

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        super().__init__(directory)
        if "encoder" not in self.manifest.files:  # another runtime's artifact (a registered runtime may run graphs)
            raise ValueError(f"{directory} is a {self.manifest.runtime} artifact without ONNX graphs")
        files = self.manifest.files
        if merged and "decoder_merged" not in files:
            raise ValueError(f"{directory} has no merged decoder: autocompress.export.layout finishes an artifact")
        if "decoder_merged" not in files and "decoder_step" not in files:
            raise UserInputError(
                f"{directory} is an onnxruntime artifact of an older autocompress layout (one decoder graph): "
                "export it again with this version"
            )
        options = session_options(threads)
        split = "decoder_step" in files and not merged  # faster than the merged graph's If (export/layout.py)
        graphs = ("encoder", "decoder_cross", "decoder_step") if split else ("encoder", "decoder_merged")
        self.sessions = {
            graph: ort.InferenceSession(str(self.directory / files[graph]), options, providers=list(providers))
            for graph in graphs
        }
        self.merged = "decoder_merged" in self.sessions
        self.input_names = {graph: [i.name for i in s.get_inputs()] for graph, s in self.sessions.items()}
        self.output_names = {graph: [o.name for o in s.get_outputs()] for graph, s in self.sessions.items()}
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
        (hidden,) = self.sessions["encoder"].run(None, encoder_feed)
        rows = input_ids.shape[0] * copies
        feed = {
            "encoder_attention_mask": np.repeat(attention_mask, copies, axis=0),
            "encoder_hidden_states": np.repeat(hidden, copies, axis=0),
        }
        if self.shortlist is not None:
            self.shortlist.select(input_ids)
        structure = self.manifest.structure
        for i, (own, cross) in enumerate(zip(structure["self_heads"], structure["cross_heads"], strict=True)):
            for part, heads in (("decoder", own), ("encoder", cross)):  # empty: the first step reads no past
                empty = np.zeros((rows, heads, 0, structure["head_dim"]), dtype=hidden.dtype)
                feed[f"past_key_values.{i}.{part}.key"] = feed[f"past_key_values.{i}.{part}.value"] = empty
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
