"""The finished onnxruntime artifact in the layout Hugging Face Optimum and transformers.js load.

    onnx/encoder_model{suffix}.onnx, onnx/decoder_model_merged{suffix}.onnx, tokenizer.json, config.json,
    generation_config.json, the tokenizer's own files, artifact.json

The artifact passes work on the encoder, cross and step graphs (autocompress.export.onnx); `standard_layout` then
joins the two decoder graphs into one with the inputs and outputs of Optimum's decoder_model_merged: the step graph
runs every step, reading the self-attention past straight from past_key_values (empty at the first step, as Optimum
and transformers.js feed it), and an `If` on `use_cache_branch` before it yields the cross-attention keys and values
(computed from encoder_hidden_states at the first step, taken back from past_key_values afterwards). Unlike
Optimum's merge of two whole decoders, every weight has one consumer: onnxruntime prepacks each weight for the one
kernel reading it (two branches sharing a quantized weight computed with an unpacked copy in one of them: slower, and
not the same numbers as the separate graphs). The suffix names the precision the way transformers.js's `dtype` looks
for it.

The `If` and its copy of the cross keys and values cost each step ~25 µs on the demo (benchmarks/onnx_layout.py:
fp32 at parity, int8 +6 to +10 % p50), so the cross and step graphs stay beside the merged one, named by precision
too, and our loop (autocompress.runtime.onnx_loop) runs those: the search times what autocompress's loop runs, and
the artifact's size counts the files that loop reads (Manifest.loop_files); the merged graph is for other loaders.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autocompress.manifest import Manifest, update_manifest

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, NodeProto, ValueInfoProto

# transformers.js 4.x: dtype → file suffix (fp32 "", fp16 "_fp16", int8 "_int8", q4 "_q4"); static int8 is int8
SUFFIX = {"fp32": "", "fp16": "_fp16", "int8": "_int8", "int8_static": "_int8", "int4": "_q4"}
BIG = 1_500_000_000  # bytes of weights past which a graph keeps them in an external file (protobuf's 2 GB limit)
CROSS_PREFIX = "cross/"  # the cross graph's own names inside the first-step branch


def standard_layout(directory: Path) -> Manifest:
    """Merge the decoder graphs, name the graphs by precision and add tokenizer.json; a finished artifact is left
    as it is."""
    from autocompress.export.tokenizer_json import write_tokenizer_json

    manifest = Manifest.read(directory)
    if "encoder" not in manifest.files or "decoder_merged" in manifest.files:  # not ONNX graphs, or finished
        return manifest
    files, suffix = manifest.files, SUFFIX[manifest.dtype]
    finished = {
        "encoder": f"onnx/encoder_model{suffix}.onnx",
        "decoder_merged": f"onnx/decoder_model_merged{suffix}.onnx",
        "decoder_cross": f"onnx/decoder_cross{suffix}.onnx",
        "decoder_step": f"onnx/decoder_step{suffix}.onnx",
    }
    # decoder_hidden feeds a shortlist's projection; without one it is an output no client reads
    keep_hidden = bool(manifest.shortlist)
    merge_decoder(directory / files["decoder_cross"], directory / files["decoder_step"],
                  directory / finished["decoder_merged"], keep_hidden)  # fmt: skip
    for graph in ("encoder", "decoder_cross", "decoder_step"):
        if files[graph] != finished[graph]:
            _move(directory / files[graph], directory / finished[graph])
    write_tokenizer_json(directory)
    return update_manifest(directory, files=finished)


def merge_decoder(cross_path: Path, step_path: Path, out: Path, keep_hidden: bool) -> None:
    """The step graph in the outer graph, reading the self-attention past straight from past_key_values (empty at
    the first step, as Optimum and transformers.js feed it); an If on use_cache_branch yields the cross keys and
    values (else: the cross graph; then: the past ones) and the cross presents (else: those; then: empty, as
    Optimum's merged decoders return them — a client keeps the first step's)."""
    import onnx
    from onnx import TensorProto, helper

    cross, step = onnx.load(str(cross_path)), onnx.load(str(step_path))
    layers = sum(1 for o in step.graph.output if o.name.startswith("present.")) // 2
    past = {i.name: i for i in step.graph.input if i.name.startswith("past_key_values.")}
    by_name = {o.name: o for o in step.graph.output}
    _prefix(cross.graph)
    then_nodes, else_nodes = [], list(cross.graph.node)
    values, presents = [], []  # the If's outputs: the step's cross inputs, the graph's cross presents
    renames: dict[str, str] = {}  # the step graph's cross past input → the If's output it reads instead
    for i in range(layers):
        for kv in ("key", "value"):
            theirs, present = f"past_key_values.{i}.encoder.{kv}", f"present.{i}.encoder.{kv}"
            value = renames[theirs] = f"cross_kv.{i}.{kv}"
            then_nodes.append(helper.make_node("Identity", [theirs], [value]))
            heads, dim = (d.dim_value for d in past[theirs].type.tensor_type.shape.dim[1::2])
            empty = helper.make_tensor(f"{present}.empty", TensorProto.FLOAT, [0, heads, 0, dim], [])
            then_nodes.append(helper.make_node("Constant", [], [present], value=empty))
            else_nodes.append(helper.make_node("Identity", [f"{CROSS_PREFIX}{present}"], [value]))
            else_nodes.append(helper.make_node("Identity", [f"{CROSS_PREFIX}{present}"], [present]))
            values.append(value)
            presents.append(present)
    # The branch outputs carry the step graph's own types for the cross keys and values (symbolic batch and length,
    # static heads and head size): without them onnxruntime's shape inference loses the shapes after the If and
    # skips fusions (SkipLayerNormalization): slower, and other numbers than the step graph alone.
    typed = [_typed(past[theirs], value) for theirs, value in renames.items()]
    branch_types = typed + [_past_type(past[p.replace("present", "past_key_values", 1)], p) for p in presents]
    then_branch = helper.make_graph(then_nodes, "with_past", [], branch_types)
    else_branch = helper.make_graph(else_nodes, "first_step", [], branch_types, list(cross.graph.initializer))
    choose = helper.make_node("If", ["use_cache_branch"], values + presents, name="use_cache_branch",
                              then_branch=then_branch, else_branch=else_branch)  # fmt: skip
    step_nodes = [_renamed(node, renames) for node in step.graph.node]
    outputs = [by_name["logits"]] if "logits" in by_name else []
    for i in range(layers):
        outputs += [by_name[f"present.{i}.decoder.key"], by_name[f"present.{i}.decoder.value"]]
        outputs += [t for t in branch_types if t.name in (f"present.{i}.encoder.key", f"present.{i}.encoder.value")]
    if keep_hidden:
        outputs.append(by_name["decoder_hidden"])
    first = ("encoder_attention_mask", "input_ids", "encoder_hidden_states")  # Optimum's order
    inputs = sorted((i for i in step.graph.input if i.name in first), key=lambda i: first.index(i.name))
    inputs += [_past_type(value, name) for name, value in past.items()]
    inputs.append(helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]))
    graph = helper.make_graph([choose, *step_nodes], "decoder_merged", inputs, outputs, list(step.graph.initializer))
    graph.value_info.extend(_typed(t, t.name) for t in typed)
    graph.value_info.extend(step.graph.value_info)  # the step's intermediate shapes, which its fusions need
    opsets = {o.domain: o.version for model in (cross, step) for o in model.opset_import}
    merged = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], ir_version=step.ir_version
    )
    _save(merged, out)


def _prefix(graph: GraphProto) -> None:
    """Give the cross graph's initializers and values names of their own (a branch must not shadow an outer name);
    its input, encoder_hidden_states, is the outer graph's."""
    names = {i.name for i in graph.initializer} | {o for node in graph.node for o in node.output}
    renames = {name: CROSS_PREFIX + name for name in names}
    for init in graph.initializer:
        init.name = renames[init.name]
    nodes = [_renamed(node, renames, outputs=True) for node in graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


def _renamed(node: NodeProto, renames: dict[str, str], outputs: bool = False) -> NodeProto:
    node.input[:] = [renames.get(name, name) for name in node.input]
    if outputs:
        node.output[:] = [renames.get(name, name) for name in node.output]
    return node


def _typed(value: ValueInfoProto, name: str) -> ValueInfoProto:
    from onnx import helper

    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
    return helper.make_tensor_value_info(name, tensor.elem_type, dims)


def _past_type(value: ValueInfoProto, name: str) -> ValueInfoProto:
    """A past (or present) tensor's type under `name`: [batch_size, heads, length, head_dim], the head size a number,
    the rest named. Clients size a first step's empty past themselves: transformers.js from the input metadata (its
    one symbol is batch_size; any other name reads 0), Optimum from the config's head count, which a pruned layer
    does not have. An empty past of any head count is fine (onnxruntime's Concat skips empty inputs, and the first
    step reads no cross past), so the head axis is named, not fixed."""
    from onnx import helper

    tensor = value.type.tensor_type
    dim = tensor.shape.dim[3].dim_value
    length = "encoder_sequence_length" if ".encoder." in name else "past_sequence_length"
    return helper.make_tensor_value_info(name, tensor.elem_type, ["batch_size", f"{name}.heads", length, dim])


def _save(model: ModelProto, out: Path) -> None:
    import onnx

    size = sum(onnx.numpy_helper.to_array(i).nbytes for i in model.graph.initializer)
    onnx.save(model, str(out), save_as_external_data=size > BIG, location=f"{out.name}.data")


def _remove(path: Path) -> None:
    for file in (path, path.with_name(f"{path.name}.data")):
        file.unlink(missing_ok=True)


def _move(source: Path, target: Path) -> None:
    if source.with_name(f"{source.name}.data").exists():  # external weights are found by the name in the graph
        import onnx

        onnx.save(onnx.load(str(source)), str(target), save_as_external_data=True, location=f"{target.name}.data")
        _remove(source)
        return
    source.replace(target)
