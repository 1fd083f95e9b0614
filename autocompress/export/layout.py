"""The finished onnxruntime artifact in the layout Hugging Face Optimum and transformers.js load.

    onnx/encoder_model{suffix}.onnx, onnx/decoder_model_merged{suffix}.onnx, tokenizer.json, config.json,
    generation_config.json, the tokenizer's own files, artifact.json

The artifact passes work on the encoder, cross and step graphs (autocompress.export.onnx); `standard_layout` then
joins the two decoder graphs into one with the inputs and outputs of Optimum's decoder_model_merged: an `If` on
`use_cache_branch` yields the cross-attention keys and values (computed from encoder_hidden_states at the first
step, taken back from past_key_values afterwards) and the self-attention past (empty at the first step, whatever
the client feeds), and the step graph after it runs every step. Unlike Optimum's merge of two whole decoders, every
weight has one consumer: nothing is stored twice, and onnxruntime prepacks each weight for the one kernel reading
it (two branches sharing a quantized weight compute with an unpacked copy in one of them: slower, and not the same
numbers). The suffix names the precision the way transformers.js's `dtype` option looks for it. Our own loop
(autocompress.runtime.onnx_loop) runs the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autocompress.export.manifest import Manifest, update_manifest

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
    if manifest.runtime != "onnxruntime" or "decoder_merged" in manifest.files:
        return manifest
    files, suffix = manifest.files, SUFFIX[manifest.dtype]
    encoder = f"onnx/encoder_model{suffix}.onnx"
    merged = f"onnx/decoder_model_merged{suffix}.onnx"
    # decoder_hidden feeds a shortlist's projection; without one it is an output no client reads
    keep_hidden = bool(manifest.shortlist)
    merge_decoder(
        directory / files["decoder_cross"], directory / files["decoder_step"], directory / merged, keep_hidden
    )
    for graph in ("decoder_cross", "decoder_step"):
        _remove(directory / files[graph])
    if files["encoder"] != encoder:
        _move(directory / files["encoder"], directory / encoder)
    write_tokenizer_json(directory)
    return update_manifest(directory, files={"encoder": encoder, "decoder_merged": merged})


def merge_decoder(cross_path: Path, step_path: Path, out: Path, keep_hidden: bool) -> None:
    import onnx
    from onnx import TensorProto, helper

    cross, step = onnx.load(str(cross_path)), onnx.load(str(step_path))
    layers = sum(1 for o in step.graph.output if o.name.startswith("present.")) // 2
    past = {i.name: i for i in step.graph.input if i.name.startswith("past_key_values.")}
    then_nodes, else_nodes, branch_outputs = [], [], []
    heads_dim = {}
    for name, value in past.items():
        dims = value.type.tensor_type.shape.dim
        heads_dim[name] = (dims[1].dim_value, dims[3].dim_value)
    _prefix(cross.graph)
    else_nodes += list(cross.graph.node)
    # the first step's empty self-attention past: [batch, heads, 0, head_dim], batch from encoder_hidden_states
    else_nodes += [
        helper.make_node("Shape", ["encoder_hidden_states"], [f"{CROSS_PREFIX}batch"], start=0, end=1),
    ]
    for i in range(layers):
        for kv in ("key", "value"):
            own, theirs = f"past_key_values.{i}.decoder.{kv}", f"past_key_values.{i}.encoder.{kv}"
            then_nodes.append(helper.make_node("Identity", [own], [f"self_past.{i}.{kv}"]))
            then_nodes.append(helper.make_node("Identity", [theirs], [f"cross_past.{i}.{kv}"]))
            heads, dim = heads_dim[own]
            shape = f"{CROSS_PREFIX}empty_shape.{i}.{kv}"
            tail = helper.make_tensor(f"{shape}.tail", TensorProto.INT64, [3], [heads, 0, dim])
            else_nodes.append(helper.make_node("Constant", [], [f"{shape}.tail"], value=tail))
            else_nodes.append(helper.make_node("Concat", [f"{CROSS_PREFIX}batch", f"{shape}.tail"], [shape], axis=0))
            zero = helper.make_tensor(f"{shape}.zero", TensorProto.FLOAT, [1], [0.0])
            else_nodes.append(helper.make_node("ConstantOfShape", [shape], [f"self_past.{i}.{kv}"], value=zero))
            else_nodes.append(
                helper.make_node("Identity", [f"{CROSS_PREFIX}present.{i}.encoder.{kv}"], [f"cross_past.{i}.{kv}"])
            )
            branch_outputs += [f"self_past.{i}.{kv}", f"cross_past.{i}.{kv}"]
    # The branch outputs carry the step graph's own past types (symbolic batch and length, static heads and
    # head size): without them onnxruntime's shape inference loses the shapes after the If and skips fusions
    # (SkipLayerNormalization): slower, and other numbers than the step graph alone.
    renames = {f"past_key_values.{i}.{part}.{kv}": f"{'self' if part == 'decoder' else 'cross'}_past.{i}.{kv}"
               for i in range(layers) for part in ("decoder", "encoder") for kv in ("key", "value")}  # fmt: skip
    typed = {renames[name]: value for name, value in past.items()}
    float_out = [_typed(typed[name], name) for name in branch_outputs]
    then_branch = helper.make_graph(then_nodes, "with_past", [], float_out)
    else_branch = helper.make_graph(else_nodes, "first_step", [], float_out, list(cross.graph.initializer))
    choose = helper.make_node("If", ["use_cache_branch"], branch_outputs, name="use_cache_branch",
                              then_branch=then_branch, else_branch=else_branch)  # fmt: skip
    step_nodes = [_renamed(node, renames) for node in step.graph.node]
    presents = [
        helper.make_node("Identity", [f"cross_past.{i}.{kv}"], [f"present.{i}.encoder.{kv}"])
        for i in range(layers)
        for kv in ("key", "value")
    ]
    by_name = {o.name: o for o in step.graph.output}
    outputs = [by_name["logits"]] if "logits" in by_name else []
    for i in range(layers):
        outputs += [by_name[f"present.{i}.decoder.key"], by_name[f"present.{i}.decoder.value"]]
        outputs += [
            _named_axes(by_name[f"present.{i}.decoder.key"], f"present.{i}.encoder.{kv}") for kv in ("key", "value")
        ]
    if keep_hidden:
        outputs.append(by_name["decoder_hidden"])
    first = ("encoder_attention_mask", "input_ids", "encoder_hidden_states")  # Optimum's order
    inputs = sorted((i for i in step.graph.input if i.name in first), key=lambda i: first.index(i.name))
    inputs += [_named_axes(past[name], name) for name in past]
    inputs.append(helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]))
    graph = helper.make_graph([choose, *step_nodes, *presents], "decoder_merged", inputs, outputs,
                              list(step.graph.initializer))  # fmt: skip
    graph.value_info.extend(_typed(typed[name], name) for name in branch_outputs)
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


def _named_axes(value: ValueInfoProto, name: str) -> ValueInfoProto:
    """`value`'s type under `name`, every axis named, not sized: a client feeds a first step's empty past with the
    config's head count, which a pruned layer does not have (the first-step branch never reads it)."""
    from onnx import helper

    tensor = value.type.tensor_type
    dims = [f"{name}.{axis}" for axis in range(len(tensor.shape.dim))]
    return helper.make_tensor_value_info(name, tensor.elem_type, dims)


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
