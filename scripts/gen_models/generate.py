#!/usr/bin/env python3
"""Generates the exported-model fixtures under test/models/.

Every model is a tiny transformers model built from a config with a fixed seed
(no hub downloads), exported to ONNX with symbolic batch/sequence axes, plus:

  inputs.safetensors       fixed-seed inputs under the ONNX graph input names
  outputs_f32.safetensors  PyTorch f32 outputs under the ONNX output names
  outputs_f64.safetensors  the same model after .double() (same weights, same
                           inputs) run in PyTorch f64
  inputs_alt.safetensors, outputs_alt_f32.safetensors
                           a second input set at other sizes, f32 outputs

and examples/models/gpt2-tiny.onnx (a copy of gpt2-tiny, the README's example).

Set up once (from the repository root):

  python3 -m venv .venv-models
  .venv-models/bin/pip install -r scripts/gen_models/requirements.txt

then regenerate everything, test/models/README.md included (--only NAME ...
regenerates a few models and leaves the README alone):

  .venv-models/bin/python scripts/gen_models/generate.py

The f64 goldens describe the model's math in f64. transformers computes a few
things in f32 on purpose even for f64 inputs (LLaMA's RMSNorm and rotary
tables upcast to f32 to protect f16/bf16 runs; in an f64 run that is a
downcast), so for the f64 run those modules are swapped for the same formula
evaluated in the input's dtype (and softmax's dtype=float32 request is kept
at f64). Every swap is listed in F64_SWAPS and softmax_keeps_f64 below; GELU
constants follow --f64-gelu (see gelu_with_exported_constants).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import numpy as np
import onnx
import torch
from safetensors.numpy import save_file

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEED = 20240611
MAX_MODEL_BYTES = 2 * 1024 * 1024
# (batch, length) of the main inputs, and of a second set at other sizes that
# checks the shape subgraphs fold for shapes other than the traced one.
SHAPE = (2, 16)
ALT_SHAPE = (1, 7)


def perturb_(model: torch.nn.Module, seed: int, scale: float) -> None:
    """Adds small noise to every parameter so no weight is exactly 0 or 1:
    a kernel that ignores a LayerNorm bias or a scale then shows up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def bake_parametrizations_(model: torch.nn.Module) -> None:
    """Replaces parametrized weights (wav2vec2's weight-normed positional
    conv) by their f32 value, as an exporter with constant folding stores
    them: the graph gets one plain conv weight, and the f64 run uses exactly
    that weight instead of recomputing g * v / ||v|| in f64."""
    from torch.nn.utils import parametrize
    for mod in list(model.modules()):
        if parametrize.is_parametrized(mod):
            for name in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, name, leave_parametrized=True)


# --- The models ---------------------------------------------------------------
# Each model is exported as transformers builds it (so initializer names are
# the usual state-dict names) with return_dict=False and use_cache=False: the
# graph takes the leading positional inputs and returns a tuple of tensors.

TUPLE_OUTPUTS = dict(return_dict=False, use_cache=False)


def only_inputs(model: torch.nn.Module, names: List[str]) -> torch.nn.Module:
    """Narrows forward() to `names`: the TorchScript exporter would otherwise
    turn LlamaForCausalLM's logits_to_keep=0 default into a graph input. A
    subclass keeps the state-dict names (a wrapper module would prefix them)."""
    base = type(model)
    params = ", ".join(names)
    namespace: Dict[str, object] = {"base": base}
    exec(f"def forward(self, {params}):\n"
         f"    return base.forward(self, {', '.join(f'{n}={n}' for n in names)})\n",
         namespace)
    model.__class__ = type(base.__name__, (base,), {"forward": namespace["forward"]})
    return model


def token_inputs(g: torch.Generator, vocab: int, names: List[str], batch: int,
                 seq: int) -> Dict[str, torch.Tensor]:
    ids = torch.randint(0, vocab, (batch, seq), generator=g, dtype=torch.int64)
    out = {"input_ids": ids}
    if "attention_mask" in names:
        # Right padding on the last row: masked keys, no fully masked row.
        mask = torch.ones(batch, seq, dtype=torch.int64)
        mask[batch - 1, seq - max(1, seq // 3):] = 0
        out["attention_mask"] = mask
    if "token_type_ids" in names:
        tt = torch.zeros(batch, seq, dtype=torch.int64)
        tt[:, seq // 2:] = 1
        out["token_type_ids"] = tt
    return out


def build_bert():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64, type_vocab_size=2,
                     hidden_act="gelu", initializer_range=0.2,
                     attn_implementation="eager", **TUPLE_OUTPUTS)
    return BertModel(cfg, add_pooling_layer=True)


def build_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2,
                     n_head=2, activation_function="gelu_new",
                     initializer_range=0.2, tie_word_embeddings=True,
                     attn_implementation="eager", **TUPLE_OUTPUTS)
    m = GPT2LMHeadModel(cfg)
    assert m.lm_head.weight is m.transformer.wte.weight, "lm_head must be tied to wte"
    return m


def llama_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-6, rope_theta=10000.0,
                       hidden_act="silu", initializer_range=0.2,
                       tie_word_embeddings=False, attn_implementation="eager",
                       **TUPLE_OUTPUTS)


def build_llama():
    from transformers import LlamaForCausalLM
    cfg = llama_config()
    return only_inputs(LlamaForCausalLM(cfg), ["input_ids", "attention_mask"])


def build_vit():
    from transformers import ViTConfig, ViTModel
    cfg = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                    num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, hidden_act="gelu",
                    initializer_range=0.2, attn_implementation="eager",
                    **TUPLE_OUTPUTS)
    return ViTModel(cfg, add_pooling_layer=True)


def build_wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         hidden_act="gelu", feat_extract_norm="group",
                         feat_extract_activation="gelu",
                         conv_dim=(16, 16), conv_kernel=(10, 3),
                         conv_stride=(5, 2), conv_bias=False,
                         num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=4,
                         do_stable_layer_norm=False, apply_spec_augment=False,
                         mask_time_prob=0.0, initializer_range=0.2,
                         attn_implementation="eager", **TUPLE_OUTPUTS)
    return Wav2Vec2Model(cfg)


# --- f64 swaps (see the module docstring) ----------------------------------


def rmsnorm_in_input_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def rotary_in_input_dtype(self, x, position_ids):
    inv_freq = self.inv_freq[None, :, None].to(x.dtype).expand(position_ids.shape[0], -1, 1)
    pos = position_ids[:, None, :].to(x.dtype)
    freqs = (inv_freq @ pos).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


def swap_llama_f32_islands(model: torch.nn.Module) -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding
    for mod in model.modules():
        if isinstance(mod, LlamaRMSNorm):
            mod.forward = rmsnorm_in_input_dtype.__get__(mod)
        elif isinstance(mod, LlamaRotaryEmbedding):
            mod.forward = rotary_in_input_dtype.__get__(mod)


@contextlib.contextmanager
def softmax_keeps_f64():
    """LLaMA's eager attention asks softmax for dtype=float32 (an upcast meant
    for f16/bf16); in the f64 run that would be a downcast, so keep f64."""
    original = torch.nn.functional.softmax

    def softmax(input, dim=None, _stacklevel=3, dtype=None):
        if dtype is not None and input.dtype == torch.float64:
            dtype = torch.float64
        return original(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    torch.nn.functional.softmax = softmax
    try:
        yield
    finally:
        torch.nn.functional.softmax = original


@contextlib.contextmanager
def gelu_with_exported_constants():
    """For --f64-gelu=exported: GELU in the f64 run uses the constants the
    TorchScript exporter writes into the graph, rounded to f32 (sqrt(2) for
    the erf form; sqrt(2/pi) and 0.044715 for the tanh form). The goldens
    then describe the exported graph rather than PyTorch's exact GELU, which
    differs by about 1e-8 relative."""
    from transformers import activations

    def f32(v: float) -> float:
        return float(np.float32(v))

    def erf_gelu(self, x):
        if x.dtype != torch.float64:
            return erf_forward(self, x)
        return x * (1.0 + torch.erf(x / f32(math.sqrt(2.0)))) * 0.5

    def tanh_gelu(self, x):
        if x.dtype != torch.float64:
            return tanh_forward(self, x)
        inner = f32(math.sqrt(2.0 / math.pi)) * (x + f32(0.044715) * torch.pow(x, 3.0))
        return 0.5 * x * (1.0 + torch.tanh(inner))

    erf_forward = activations.GELUActivation.forward
    tanh_forward = activations.NewGELUActivation.forward
    activations.GELUActivation.forward = erf_gelu
    activations.NewGELUActivation.forward = tanh_gelu
    try:
        yield
    finally:
        activations.GELUActivation.forward = erf_forward
        activations.NewGELUActivation.forward = tanh_forward


F64_SWAPS: Dict[str, Callable[[torch.nn.Module], None]] = {
    "llama-tiny": swap_llama_f32_islands,
    "llama-dynamo": swap_llama_f32_islands,
}


@dataclass
class Spec:
    name: str
    build: Callable
    input_names: List[str]
    output_names: List[str]
    # (generator, batch, length) -> inputs; length is the sequence or the
    # number of audio samples, unused for images.
    make_inputs: Callable[[torch.Generator, int, int], Dict[str, torch.Tensor]]
    dynamic_axes: Dict[str, Dict[int, str]]
    shape: Tuple[int, int] = SHAPE
    alt_shape: Tuple[int, int] = ALT_SHAPE
    exporter: str = "torchscript"  # or "dynamo"
    opset: int = 17
    description: str = ""
    copies: List[str] = field(default_factory=list)


TOKENS = {0: "batch", 1: "sequence"}

SPECS = [
    Spec("bert-tiny", build_bert,
         ["input_ids", "attention_mask", "token_type_ids"],
         ["last_hidden_state", "pooler_output"],
         lambda g, b, n: token_inputs(g, 128, ["attention_mask", "token_type_ids"], b, n),
         {"input_ids": TOKENS, "attention_mask": TOKENS, "token_type_ids": TOKENS,
          "last_hidden_state": TOKENS, "pooler_output": {0: "batch"}},
         description="BertModel + pooler: vocab 128, hidden 32, 2 layers, 2 heads, "
                     "ffn 64, GELU(erf), eager attention"),
    Spec("gpt2-tiny", build_gpt2, ["input_ids"], ["logits"],
         lambda g, b, n: token_inputs(g, 128, [], b, n),
         {"input_ids": TOKENS, "logits": TOKENS},
         description="GPT2LMHeadModel: vocab 128, n_embd 32, 2 layers, 2 heads, "
                     "gelu_new, Conv1D-as-MatMul, lm_head tied to wte, eager attention",
         copies=["examples/models/gpt2-tiny.onnx"]),
    Spec("llama-tiny", build_llama, ["input_ids", "attention_mask"], ["logits"],
         lambda g, b, n: token_inputs(g, 128, ["attention_mask"], b, n),
         {"input_ids": TOKENS, "attention_mask": TOKENS, "logits": TOKENS},
         description="LlamaForCausalLM: vocab 128, hidden 64, 2 layers, 4 heads / "
                     "2 KV heads (GQA), ffn 128, RMSNorm, SiLU, rotary, eager attention"),
    Spec("vit-tiny", build_vit, ["pixel_values"],
         ["last_hidden_state", "pooler_output"],
         lambda g, b, n: {"pixel_values": torch.randn(b, 3, 16, 16, generator=g)},
         {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"},
          "pooler_output": {0: "batch"}},
         alt_shape=(3, 0),
         description="ViTModel + pooler: 16x16x3 images, 4x4 patches (Conv), hidden 32, "
                     "2 layers, 2 heads, ffn 64, GELU(erf), eager attention"),
    Spec("wav2vec2-tiny", build_wav2vec2, ["input_values"],
         ["last_hidden_state", "extract_features"],
         lambda g, b, n: {"input_values": torch.randn(b, n, generator=g)},
         {"input_values": {0: "batch", 1: "samples"},
          "last_hidden_state": {0: "batch", 1: "frames"},
          "extract_features": {0: "batch", 1: "frames"}},
         shape=(2, 400), alt_shape=(3, 233),
         description="Wav2Vec2Model: conv feature extractor 2x Conv1d (16 ch, k 10/3, "
                     "s 5/2) with GroupNorm + GELU, weight-normed grouped positional "
                     "Conv1d (k 8, 4 groups), hidden 32, 2 layers, 2 heads, ffn 64"),
    Spec("llama-dynamo", build_llama, ["input_ids", "attention_mask"], ["logits"],
         lambda g, b, n: token_inputs(g, 128, ["attention_mask"], b, n),
         {"input_ids": TOKENS, "attention_mask": TOKENS, "logits": TOKENS},
         exporter="dynamo", opset=18,
         description="the llama-tiny config, exported by the dynamo exporter"),
]


def export(spec: Spec, model: torch.nn.Module, args: tuple, path: str) -> None:
    if spec.exporter == "torchscript":
        # No constant folding: it would replace each Linear weight by a
        # transposed copy named onnx::MatMul_N (losing the state-dict names a
        # PEFT spec targets) and store GPT-2's tied wte again for lm_head.
        torch.onnx.export(model, args, path, dynamo=False, opset_version=spec.opset,
                          input_names=spec.input_names, output_names=spec.output_names,
                          dynamic_axes=spec.dynamic_axes, do_constant_folding=False)
        return
    from torch.export import Dim
    dims = {}
    shapes = {}
    for name in spec.input_names:
        axes = spec.dynamic_axes.get(name, {})
        # torch.export wants finite ranges; 64 is max_position_embeddings.
        shapes[name] = {a: dims.setdefault(d, Dim(d, max=64)) for a, d in axes.items()}
    program = torch.onnx.export(model, args, dynamo=True, opset_version=spec.opset,
                                input_names=spec.input_names,
                                output_names=spec.output_names,
                                dynamic_shapes=shapes, external_data=False,
                                optimize=True)
    program.save(path, external_data=False)


def model_ops(proto: onnx.ModelProto) -> List[str]:
    ops = set()

    def visit(graph):
        for node in graph.node:
            dom = "" if node.domain in ("", "ai.onnx") else node.domain + "::"
            ops.add(dom + node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(proto.graph)
    return sorted(ops)


def to_numpy(named: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in named.items()}


def check_with_onnx_reference(path: str, inputs: Dict[str, np.ndarray],
                              expected: Dict[str, np.ndarray]) -> float:
    """Runs the exported file on onnx's Python reference evaluator, so an
    exporter problem is told apart from a peftc problem; returns the largest
    relative difference to PyTorch."""
    from onnx.reference import ReferenceEvaluator
    names = [o.name for o in onnx.load(path, load_external_data=False).graph.output]
    got = ReferenceEvaluator(path).run(None, inputs)
    worst = 0.0
    for name, value in zip(names, got):
        ref = expected[name]
        if value.shape != ref.shape:
            raise RuntimeError(f"{path}: output {name} has shape {value.shape}, "
                               f"PyTorch gives {ref.shape}")
        scale = max(float(np.max(np.abs(ref))), 1e-30)
        worst = max(worst, float(np.max(np.abs(value.astype(np.float64) - ref))) / scale)
    return worst


def generate(spec: Spec, out_root: str, f64_gelu: str) -> Dict[str, object]:
    torch.manual_seed(SEED)
    model = spec.build()
    perturb_(model, SEED + 1, 0.05)
    bake_parametrizations_(model)
    model.eval()

    g = torch.Generator().manual_seed(SEED + 2)
    inputs = spec.make_inputs(g, *spec.shape)
    alt_inputs = spec.make_inputs(g, *spec.alt_shape)
    args = tuple(inputs[n] for n in spec.input_names)

    out_dir = os.path.join(out_root, spec.name)
    os.makedirs(out_dir, exist_ok=True)
    onnx_path = os.path.join(out_dir, "model.onnx")

    with torch.no_grad():
        f32 = model(*args)
        alt_f32 = model(*(alt_inputs[n] for n in spec.input_names))
        if len(f32) != len(spec.output_names):
            raise RuntimeError(f"{spec.name}: the model returns {len(f32)} tensors, "
                               f"expected {spec.output_names}")
        export(spec, model, args, onnx_path)

        model64 = copy.deepcopy(model).double()
        if spec.name in F64_SWAPS:
            F64_SWAPS[spec.name](model64)
        args64 = tuple(a.double() if a.is_floating_point() else a for a in args)
        with contextlib.ExitStack() as stack:
            stack.enter_context(softmax_keeps_f64())
            if f64_gelu == "exported":
                stack.enter_context(gelu_with_exported_constants())
            f64 = model64(*args64)

    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    graph_inputs = [i.name for i in proto.graph.input]
    graph_outputs = [o.name for o in proto.graph.output]
    if graph_inputs != spec.input_names:
        raise RuntimeError(f"{spec.name}: graph inputs {graph_inputs}, expected {spec.input_names}")
    if graph_outputs != spec.output_names:
        raise RuntimeError(f"{spec.name}: graph outputs {graph_outputs}, expected {spec.output_names}")
    size = os.path.getsize(onnx_path)
    if size >= MAX_MODEL_BYTES:
        raise RuntimeError(f"{spec.name}: model.onnx is {size} bytes, over {MAX_MODEL_BYTES}")

    np_inputs = to_numpy(inputs)
    np_f32 = to_numpy(dict(zip(spec.output_names, f32)))
    np_f64 = to_numpy(dict(zip(spec.output_names, f64)))
    # One key: safetensors writes metadata in hash order, and several keys
    # would make every regeneration a byte-level diff.
    meta = {"source": f"scripts/gen_models/generate.py {spec.name}, seed {SEED}, "
                      f"torch {torch.__version__}"}
    save_file(np_inputs, os.path.join(out_dir, "inputs.safetensors"), metadata=meta)
    save_file(np_f32, os.path.join(out_dir, "outputs_f32.safetensors"), metadata=meta)
    save_file(np_f64, os.path.join(out_dir, "outputs_f64.safetensors"), metadata=meta)
    np_alt_inputs = to_numpy(alt_inputs)
    np_alt_f32 = to_numpy(dict(zip(spec.output_names, alt_f32)))
    save_file(np_alt_inputs, os.path.join(out_dir, "inputs_alt.safetensors"), metadata=meta)
    save_file(np_alt_f32, os.path.join(out_dir, "outputs_alt_f32.safetensors"), metadata=meta)

    ops = model_ops(proto)

    onnx_err = max(check_with_onnx_reference(onnx_path, np_inputs, np_f32),
                   check_with_onnx_reference(onnx_path, np_alt_inputs, np_alt_f32))
    f64_vs_f32 = max(float(np.max(np.abs(np_f64[n] - np_f32[n])) / np.max(np.abs(np_f64[n])))
                     for n in spec.output_names)
    for rel in spec.copies:
        dst = os.path.join(REPO, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(onnx_path, dst)

    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return {"name": spec.name, "size": size, "opset": opset, "ir": proto.ir_version,
            "ops": ops, "onnx_ref_rel_err": onnx_err, "f64_vs_f32": f64_vs_f32,
            "shapes": {n: list(v.shape) for n, v in np_inputs.items()},
            "alt_shapes": {n: list(v.shape) for n, v in np_alt_inputs.items()},
            "description": spec.description, "exporter": spec.exporter,
            "params": sum(p.numel() for p in model.parameters())}


README_HEAD = """\
# Exported-model fixtures

Tiny transformers models with random weights (fixed seed, built from a config:
nothing is downloaded), exported to ONNX, with PyTorch goldens. ctest runs each
on the reference evaluator (`peft-run --reference`) and compares with the
goldens: f32 run vs `outputs_f32.safetensors`, `--f64` run vs
`outputs_f64.safetensors`. `models-op-coverage` checks that every op a fixture
uses has a passing ONNX node test. CI needs no PyTorch: it uses these files.

Per model, in `test/models/<name>/`:

| file | what |
|---|---|
| `model.onnx` | the exported model (weights inside), symbolic batch/sequence axes |
| `inputs.safetensors` | fixed-seed inputs under the graph input names |
| `outputs_f32.safetensors` | PyTorch f32 outputs under the ONNX output names |
| `outputs_f64.safetensors` | the same model after `.double()`, same weights and inputs, run in f64 |
| `inputs_alt.safetensors`, `outputs_alt_f32.safetensors` | a second input set at other sizes (batch 1 or 3, another length) and its f32 outputs: the graph must fold its shape subgraphs for more than the traced shape |

Regenerate (all files and this README) from the repository root:

```sh
python3 -m venv .venv-models
.venv-models/bin/pip install -r scripts/gen_models/requirements.txt
.venv-models/bin/python scripts/gen_models/generate.py
```

Pins: {pins}. Every parameter gets N(0, 0.05) noise on top of the
config's initialisation so that no weight is exactly 0 or 1. The f64 goldens
keep f64 where transformers computes in f32 on purpose for half precision
(LLaMA RMSNorm, rotary tables, eager softmax); see `generate.py`.
TorchScript exports run with `do_constant_folding=False`, so initializers keep
their state-dict names (`model.layers.0.self_attn.q_proj.weight`) and GPT-2's
`lm_head` uses `transformer.wte.weight` itself through a Transpose (folding
would store a transposed copy under a generated name).
wav2vec2's weight-normed positional conv weight is baked to its f32 value
before export, as constant folding would store it: one plain conv weight.

GELU: these goldens were made with `--f64-gelu={gelu}`. The TorchScript
exporter writes GELU as Div/Erf/Add/Mul (or, for GPT-2's gelu_new, the tanh
form) with sqrt(2), sqrt(2/pi) and 0.044715 rounded to f32 constants. With
`exported` (the default) the f64 run uses those f32-rounded constants, so the
goldens are the exported graph's function in f64 and the reference evaluator
matches them to about 1e-12. With `exact` they use PyTorch's exact GELU; a
graph evaluated as written is then about 1e-8 (relative) off, and only an
importer that turns the pattern into an exact `nn.gelu` meets 1e-9. Switch
the goldens (and this line) if the importer starts doing that.

"""


def write_readme(path: str, results: List[Dict[str, object]], f64_gelu: str) -> None:
    pins = ", ".join(
        f"`{line.strip()}`"
        for line in open(os.path.join(os.path.dirname(__file__), "requirements.txt"))
        if line.strip() and not line.startswith("#"))
    head = README_HEAD.replace("{pins}", pins).replace("{gelu}", f64_gelu)
    lines = [head.rstrip("\n"), ""]
    lines.append("| model | config | exporter | opset | size | inputs | alt inputs |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in results:
        exporter = ("`torch.onnx.export(dynamo=True)`" if r["exporter"] == "dynamo"
                    else "`torch.onnx.export(dynamo=False)`")
        def shapes(d):
            return ", ".join(f"`{n}` {'x'.join(map(str, s))}" for n, s in d.items())
        lines.append(f"| `{r['name']}` | {r['description']}; {r['params']} params | "
                     f"{exporter} | {r['opset']} (IR {r['ir']}) | {r['size']} B | "
                     f"{shapes(r['shapes'])} | {shapes(r['alt_shapes'])} |")
    lines.append("")
    lines.append("## ONNX ops per model")
    lines.append("")
    for r in results:
        lines.append(f"- `{r['name']}` ({len(r['ops'])}): " + ", ".join(r["ops"]))
    union = sorted({op for r in results for op in r["ops"]})
    lines.append("")
    lines.append(f"All fixtures together use {len(union)} ops: " + ", ".join(union) + ".")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "test", "models"))
    ap.add_argument("--only", nargs="*", default=None, help="model names to regenerate")
    ap.add_argument("--f64-gelu", choices=["exported", "exact"], default="exported",
                    help="GELU in the f64 goldens: with the f32-rounded constants the "
                         "exported graph holds (default), or PyTorch's exact formula")
    opts = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = [s.name for s in SPECS]
    for n in opts.only or []:
        if n not in names:
            print(f"unknown model {n}; known: {', '.join(names)}", file=sys.stderr)
            return 1
    results = []
    for spec in SPECS:
        if opts.only and spec.name not in opts.only:
            continue
        r = generate(spec, opts.out, opts.f64_gelu)
        results.append(r)
        print(f"{r['name']}: {r['size']} bytes, {r['params']} params, {r['exporter']} "
              f"opset {r['opset']} (IR {r['ir']}), inputs {r['shapes']}, "
              f"onnx.reference vs torch f32 {r['onnx_ref_rel_err']:.2e}, "
              f"torch f64 vs f32 {r['f64_vs_f32']:.2e}")
        print(f"  ops: {' '.join(r['ops'])}")
    if not opts.only:
        write_readme(os.path.join(opts.out, "README.md"), results, opts.f64_gelu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
