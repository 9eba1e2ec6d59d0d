"""Small real ONNX policies built with ``onnx.helper`` straight from a contract.

Tests and benchmarks need real models for every action space and input role without
PyTorch or downloads. :func:`build_policy` reads a contract document and wires one
encoder per input (a two-layer strided CNN for images, a flatten/cast for vectors) into a
shared MLP whose output is reshaped to ``[1, horizon, dim]``. Weights are random but
seeded, so outputs are deterministic. ``poison`` makes deliberately bad models (NaN
output, wrong runtime shape) for the output-checking paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from robot_brain.inference.contract import ROLE_ACTION_CHUNK, ROLE_IMAGE, ModelContract
from robot_brain.inference.model import embed_contract

OPSET = 17
IR_VERSION = 8

_ONNX_TYPES = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "float16": TensorProto.FLOAT16,
    "int64": TensorProto.INT64,
    "int32": TensorProto.INT32,
    "uint8": TensorProto.UINT8,
    "bool": TensorProto.BOOL,
}


class GraphBuilder:
    """Accumulates nodes and initializers with unique names (a thin layer over onnx.helper)."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self._count = 0

    def name(self, prefix: str) -> str:
        """A fresh tensor name."""
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, value: np.ndarray | Sequence[float] | float, prefix: str = "c", dtype: type = np.float32) -> str:
        """Add an initializer and return its name."""
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str | None = None, **attributes: Any) -> str:
        """Add one node with a single output (named ``output`` or fresh) and return the output's name."""
        out = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attributes))
        return out

    def dense(self, x: str, n_in: int, n_out: int, relu: bool) -> str:
        """Gemm (+ReLU) with He-initialised weights."""
        weight = self.rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out))
        y = self.op("Gemm", [x, self.const(weight, "w"), self.const(np.zeros(n_out), "b")])
        return self.op("Relu", [y]) if relu else y

    def conv(self, x: str, c_in: int, c_out: int) -> str:
        """3x3 stride-2 convolution + ReLU."""
        weight = self.rng.normal(0.0, np.sqrt(2.0 / (9 * c_in)), (c_out, c_in, 3, 3))
        y = self.op(
            "Conv",
            [x, self.const(weight, "k"), self.const(np.zeros(c_out), "kb")],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
        return self.op("Relu", [y])

    def model(
        self, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto], name: str
    ) -> onnx.ModelProto:
        """Assemble the checked model."""
        graph = helper.make_graph(self.nodes, name, list(inputs), list(outputs), self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="robot_brain.inference.builders",
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def value_info(name: str, dtype: str, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    """A graph input/output declaration."""
    return helper.make_tensor_value_info(name, _ONNX_TYPES[dtype], list(shape))


def build_policy(
    document: Mapping[str, Any],
    *,
    hidden: Sequence[int] = (256, 256),
    conv_channels: Sequence[int] = (16, 32),
    seed: int = 0,
    poison: str | None = None,
    embed: bool = True,
) -> onnx.ModelProto:
    """A random-weight policy honouring ``document`` (a contract dict); embeds the contract.

    Every input must have a static shape with batch 1. ``poison``: ``"nan"`` adds NaN to the
    actions, ``"shape"`` returns one waypoint fewer than declared (output dims left symbolic).
    """
    contract = ModelContract.from_dict(document)
    builder = GraphBuilder(seed)
    features: list[str] = []
    width = 0
    graph_inputs = []
    for spec in contract.inputs:
        if spec.shape is None or not all(isinstance(d, int) for d in spec.shape):
            raise ValueError(f"input {spec.name}: builders need a static shape, found {spec.shape}")
        graph_inputs.append(value_info(spec.name, spec.dtype, spec.shape))
        x = spec.name if spec.dtype == "float32" else builder.op("Cast", [spec.name], to=TensorProto.FLOAT)
        if spec.role == ROLE_IMAGE:
            channels = int(spec.shape[1] if spec.image and spec.image.layout == "chw" else spec.shape[-1])
            if spec.image and spec.image.layout == "hwc":
                x = builder.op("Transpose", [x], perm=[0, 3, 1, 2])
            for c_out in conv_channels:
                x = builder.conv(x, channels, c_out)
                channels = c_out
            x = builder.op("Flatten", [builder.op("GlobalAveragePool", [x])])
            width += channels
        else:
            x = builder.op("Flatten", [x])
            width += int(np.prod(spec.shape[1:]))
        features.append(x)
    x = builder.op("Concat", features, axis=1) if len(features) > 1 else features[0]
    for size in hidden:
        x = builder.dense(x, width, size, relu=True)
        width = size
    graph_outputs = []
    for spec in contract.outputs:
        if spec.role != ROLE_ACTION_CHUNK:
            raise ValueError("build_policy builds policies: every output must be an action_chunk")
        horizon = spec.horizon - 1 if poison == "shape" else spec.horizon
        y = builder.op("Tanh", [builder.dense(x, width, horizon * spec.dim, relu=False)])
        if poison == "nan":
            y = builder.op("Add", [y, builder.const(np.float32(np.nan))])
        shape = builder.const(np.array([1, horizon, spec.dim]), "shape", np.int64)
        builder.op("Reshape", [y, shape], output=spec.name)
        declared = ["batch", "horizon", "dim"] if poison == "shape" else [1, spec.horizon, spec.dim]
        graph_outputs.append(value_info(spec.name, spec.dtype, declared))
    model = builder.model(graph_inputs, graph_outputs, contract.name)
    return embed_contract(model, document) if embed else model


def mlp_contract(
    action_space: str = "joint_position",
    dof: int = 7,
    horizon: int = 16,
    dt: float = 0.05,
    gripper: bool = True,
) -> dict[str, Any]:
    """A state-only policy contract (joint positions + velocities + gripper) for tests and benches."""
    sizes = {"ee_pose": 7, "ee_pose_delta": 7, "ee_twist": 6}
    dim = sizes.get(action_space, dof) + int(gripper)
    inputs: list[dict[str, Any]] = [
        {"name": "qpos", "role": "joint_positions", "shape": [1, dof]},
        {"name": "qvel", "role": "joint_velocities", "shape": [1, dof]},
    ]
    return {
        "name": f"mlp_{action_space}",
        "inputs": inputs,
        "outputs": [
            {
                "name": "actions",
                "role": "action_chunk",
                "action_space": action_space,
                "shape": [1, horizon, dim],
                "horizon": horizon,
                "dt": dt,
                "dim": dim,
                "gripper": gripper,
            }
        ],
        "control_rate_hz": 20.0,
    }


def cnn_contract(size: int = 96, dof: int = 7, horizon: int = 16) -> dict[str, Any]:
    """A small visuomotor contract: one RGB camera image plus joint positions."""
    contract = mlp_contract("joint_position", dof=dof, horizon=horizon, gripper=True)
    contract["name"] = "cnn_visuomotor"
    contract["inputs"] = [
        {
            "name": "image",
            "role": "image",
            "topic": "/camera/image_raw",
            "shape": [1, 3, size, size],
            "image": {
                "width": size,
                "height": size,
                "channel_order": "rgb",
                "layout": "chw",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
            },
        },
        {"name": "qpos", "role": "joint_positions", "shape": [1, dof]},
    ]
    return contract
