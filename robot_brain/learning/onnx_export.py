"""A trained policy → one ONNX file with its contract and provenance, checked before it is written.

1. ``torch.onnx.export(..., dynamo=False)``: the legacy TorchScript exporter (the dynamo one
   needs ``onnxscript``, which is not installed, and splits weights into a ``.onnx.data`` file);
   opset 17, batch 1, the graph's inputs and output named as the contract names them.
2. The contract (:func:`policy_contract`: roles, ``ee_pose_delta``, horizon, ``dt``, control
   rate, ``learned: true``, normalisation) is embedded with
   :func:`robot_brain.inference.model.embed_contract`, the provenance with
   :func:`robot_brain.learning.model_provenance.embed_provenance`.
3. **Checks, before anything is written**: onnxruntime's output against PyTorch's on the given
   (held-out) frames, one frame per run as the policy node runs it: the largest absolute
   difference must be ≤ :data:`MAX_ABS_DIFF` (1e-4, normalised units; also reported in metres
   after the contract's un-normalisation). Then the file's bytes go through
   :func:`robot_brain.inference.model.load_model` (every contract/graph check the nodes make)
   and :class:`robot_brain.inference.runtime.InferenceRuntime` (the policy node's runtime, IO
   binding and all), whose output must match too.
4. Written atomically (temporary file, fsync, rename): a failed check never leaves a model.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from robot_brain.errors import UserError
from robot_brain.inference.contract import ModelContract
from robot_brain.inference.model import embed_contract, load_model
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions
from robot_brain.learning.model_provenance import embed_provenance
from robot_brain.storage.files import atomic_write_bytes

OPSET = 17
MAX_ABS_DIFF = 1e-4
ACTION_OUTPUT = "actions"


class ExportError(UserError):
    """The exported graph does not reproduce PyTorch's outputs, or fails the runtime's checks."""


def policy_contract(
    *,
    name: str,
    description: str,
    input_names: Sequence[str],
    horizon: int,
    dt: float,
    control_rate_hz: float,
    normalization: Mapping[str, Mapping[str, Sequence[float]]],
    image: Mapping[str, Any] | None = None,
    image_topic: str = "/camera/image_raw",
    target_topic: str = "/perception/target_point",
) -> dict[str, Any]:
    """The contract document of a learned ``ee_pose_delta`` policy (the roles and names of ``builtin:reach``)."""
    inputs: list[dict[str, Any]] = []
    for input_name in input_names:
        if input_name == "image":
            if image is None:
                raise ValueError("an image input needs its image spec")
            inputs.append(
                {
                    "name": "image",
                    "role": "image",
                    "topic": image_topic,
                    "dtype": "float32",
                    "shape": [1, 3, int(image["height"]), int(image["width"])],
                    "image": dict(image),
                }
            )
        elif input_name == "target_point":
            inputs.append(
                {
                    "name": "target_point",
                    "role": "target_point",
                    "topic": target_topic,
                    "shape": [1, 3],
                    "synchronized": False,
                }
            )
        elif input_name == "ee_pose":
            inputs.append({"name": "ee_pose", "role": "ee_pose", "shape": [1, 7]})
        else:
            raise ValueError(f"unknown policy input {input_name!r}")
    document = {
        "schema_version": 1,
        "name": name,
        "kind": "policy",
        "description": description,
        "learned": True,
        "control_rate_hz": float(control_rate_hz),
        "inputs": inputs,
        "outputs": [
            {
                "name": ACTION_OUTPUT,
                "role": "action_chunk",
                "action_space": "ee_pose_delta",
                "shape": [1, horizon, 7],
                "horizon": horizon,
                "dt": float(dt),
                "dim": 7,
                "gripper": False,
            }
        ],
        "normalization": {
            key: {"mean": list(map(float, v["mean"])), "std": list(map(float, v["std"]))}
            for key, v in normalization.items()
        },
    }
    ModelContract.from_dict(document)  # a contract the runtime would refuse is a bug here, not later
    return document


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely ONNX Runtime reproduces PyTorch."""

    path: Path
    sha256: str
    frames: int
    max_abs_diff: float
    """Largest |onnxruntime − torch| over the check frames (normalised action units)."""
    max_abs_diff_m: float
    """The same after the contract's un-normalisation (metres for positions)."""
    runtime_max_abs_diff: float
    """InferenceRuntime (the policy node's path) against torch, first frames."""
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "max_abs_diff": self.max_abs_diff,
            "max_abs_diff_physical": self.max_abs_diff_m,
            "runtime_max_abs_diff": self.runtime_max_abs_diff,
            "tolerance": MAX_ABS_DIFF,
            "size_bytes": self.size_bytes,
        }


class _Exportable(nn.Module):
    """Positional inputs in contract order, one output: what the exporter traces."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.policy(*inputs)


def to_onnx(policy: nn.Module, input_names: Sequence[str], example: Sequence[np.ndarray]) -> onnx.ModelProto:
    """Export ``policy`` (eval mode, CPU) with the legacy exporter into memory."""
    policy = policy.eval().cpu()
    arguments = tuple(torch.as_tensor(np.ascontiguousarray(value[:1]), dtype=torch.float32) for value in example)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            _Exportable(policy),
            arguments,
            buffer,
            input_names=list(input_names),
            output_names=[ACTION_OUTPUT],
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _torch_outputs(policy: nn.Module, inputs: Sequence[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        tensors = [torch.as_tensor(value, dtype=torch.float32) for value in inputs]
        outputs = [policy(*[t[i : i + 256] for t in tensors]) for i in range(0, len(tensors[0]), 256)]
    return torch.cat(outputs).numpy()


def export_policy(
    policy: nn.Module,
    input_names: Sequence[str],
    check_inputs: Sequence[np.ndarray],
    contract: Mapping[str, Any],
    provenance: Mapping[str, Any],
    path: str | Path,
    *,
    tolerance: float = MAX_ABS_DIFF,
) -> ExportReport:
    """Export, embed, check against PyTorch and the runtime, then write ``path`` (see the module docstring).

    ``check_inputs``: one ``(N, ...)`` float32 array per input, normalised as the runtime feeds them.
    ``provenance`` may leave ``result.onnx_check`` to be filled in here.
    """
    target = Path(path)
    model = to_onnx(policy, input_names, check_inputs)
    import robot_brain

    model.producer_name = "robot_brain"
    model.producer_version = f"{robot_brain.__version__} (torch {torch.__version__})"
    embed_contract(model, contract)
    onnx.checker.check_model(model)

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = _torch_outputs(policy, check_inputs)
    count = len(check_inputs[0])
    produced = np.empty_like(expected)
    for index in range(count):
        feeds = {
            name: values[index : index + 1].astype(np.float32)
            for name, values in zip(input_names, check_inputs, strict=True)
        }
        produced[index] = session.run([ACTION_OUTPUT], feeds)[0][0]
    difference = float(np.max(np.abs(produced - expected))) if count else 0.0
    std = np.asarray(contract["normalization"][ACTION_OUTPUT]["std"], dtype=np.float64)
    physical = float(np.max(np.abs(produced - expected) * std)) if count else 0.0
    if not difference <= tolerance:
        raise ExportError(
            f"ONNX export check: expected onnxruntime to match PyTorch within {tolerance:g}, "
            f"found a max abs difference of {difference:.3g} over {count} frames"
        )

    # The model as it will be written, with the check's numbers in its provenance.
    document = json_copy(provenance)
    result = document.setdefault("result", {})
    result["onnx_check"] = {
        "frames": count,
        "max_abs_diff": difference,
        "max_abs_diff_physical": physical,
        "tolerance": tolerance,
        "compared": "onnxruntime (CPU) vs PyTorch eval, normalised action units",
    }
    embed_provenance(model, document)
    data = model.SerializeToString()

    loaded = load_model(data)  # the nodes' own checks: contract against graph, opset, checker
    runtime = InferenceRuntime(loaded, RuntimeOptions(providers="cpu", warmup_runs=1, intra_op_threads=1))
    runtime_difference = 0.0
    for index in range(min(count, 8)):
        feeds = {
            name: values[index : index + 1].astype(np.float32)
            for name, values in zip(input_names, check_inputs, strict=True)
        }
        output = runtime.run(feeds)[ACTION_OUTPUT]
        runtime_difference = max(runtime_difference, float(np.max(np.abs(output[0] - expected[index]))))
    if not runtime_difference <= tolerance:
        raise ExportError(
            f"ONNX export check: the policy runtime's output differs from PyTorch by {runtime_difference:.3g} "
            f"(expected at most {tolerance:g})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    return ExportReport(
        path=target,
        sha256=loaded.sha256,
        frames=count,
        max_abs_diff=difference,
        max_abs_diff_m=physical,
        runtime_max_abs_diff=runtime_difference,
        size_bytes=len(data),
    )


def json_copy(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, JSON-only copy."""
    import json

    return json.loads(json.dumps(document))
