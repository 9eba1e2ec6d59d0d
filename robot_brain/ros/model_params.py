"""Parameters shared by the model-running nodes (policy, perception): model file and ONNX Runtime.

Declared in one place so both nodes name, describe and default them identically (mirrored
in ``config/policy.yaml`` and ``config/perception.yaml``).
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from robot_brain.inference.model import LoadedModel, load_model
from robot_brain.inference.reach_policy import reach_policy_bytes
from robot_brain.inference.runtime import RuntimeOptions
from robot_brain.ros.params import value

BUILTIN_MODELS = {"builtin:reach": reach_policy_bytes}
"""Models built in memory instead of read from a file (the hand-written demo policy)."""


def model_parameters(model_default: str, intra_threads: int) -> tuple[tuple[str, Any, str], ...]:
    """The model file, its checks, and ONNX Runtime's settings: (name, default, description)."""
    return (
        (
            "model_path",
            model_default,
            "ONNX model file, or builtin:reach (the hand-written demo reach controller); empty: none",
        ),
        ("model_sha256", "", "Expected SHA-256 of the model file (hex); empty: not checked"),
        ("contract_path", "", "YAML/JSON sidecar that supplies or overrides the model's contract"),
        (
            "providers",
            ["auto"],
            "ONNX Runtime execution providers: [auto] (TensorRT, CUDA, CPU) or a list, e.g. [cuda, cpu]",
        ),
        ("device_id", 0, "GPU index for CUDA/TensorRT"),
        ("intra_op_threads", intra_threads, "ONNX Runtime intra-op threads (0: one per physical core)"),
        ("inter_op_threads", 0, "ONNX Runtime inter-op threads (0: default)"),
        ("trt_cache_dir", "", "TensorRT engine cache folder (empty: ~/.cache/robot_brain/tensorrt)"),
        ("trt_fp16", False, "Let TensorRT build FP16 engines"),
        (
            "cudnn_conv_algo_search",
            "HEURISTIC",
            "cuDNN convolution algorithm search: HEURISTIC (predictable start-up), EXHAUSTIVE or DEFAULT",
        ),
        ("warmup_runs", 3, "Inference runs at configure time (first CUDA/TensorRT runs are slow)"),
    )


def runtime_options(node: Node) -> RuntimeOptions:
    """RuntimeOptions from the node's parameters."""
    providers = list(value(node, "providers"))
    return RuntimeOptions(
        providers="auto" if providers in ([], ["auto"]) else providers,
        device_id=int(value(node, "device_id")),
        intra_op_threads=int(value(node, "intra_op_threads")),
        inter_op_threads=int(value(node, "inter_op_threads")),
        trt_cache_dir=str(value(node, "trt_cache_dir")),
        trt_fp16=bool(value(node, "trt_fp16")),
        cudnn_conv_algo_search=str(value(node, "cudnn_conv_algo_search")),
        warmup_runs=int(value(node, "warmup_runs")),
    )


def load_model_from_parameters(node: Node) -> LoadedModel:
    """Load and check the configured model (raises ModelContractError with the reason)."""
    path = str(value(node, "model_path"))
    builtin = BUILTIN_MODELS.get(path)
    sidecar = str(value(node, "contract_path")) or None
    return load_model(builtin() if builtin else path, sha256=str(value(node, "model_sha256")) or None, sidecar=sidecar)
