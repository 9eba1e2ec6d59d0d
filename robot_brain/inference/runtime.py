"""ONNX Runtime sessions: provider choice, honest provider reporting, warm-up, IO binding, output checks.

``onnxruntime-gpu`` lists TensorRT and CUDA as *available* even on a machine without a GPU
and silently falls back to CPU when their libraries are missing. So this module never
trusts the request: after the session exists it reads ``session.get_providers()``, reports
that, and produces a loud warning whenever a requested GPU provider is not the one in use.

The hot path (:meth:`InferenceRuntime.run`) uses IO binding with buffers allocated once:
inputs are copied into pre-bound arrays (no per-call OrtValue for static shapes) and static
outputs land in pre-bound arrays too, so a call allocates nothing it can reuse. Outputs are
checked (finite values, expected shapes); a bad output is counted and raised as
:class:`InvalidOutputError`, never returned.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from robot_brain.errors import ConfigurationError, ModelContractError
from robot_brain.inference.contract import Dim, TensorInfo
from robot_brain.inference.model import LoadedModel

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
AUTO_ORDER = (TENSORRT, CUDA, CPU)
PROVIDER_ALIASES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}
GPU_PROVIDERS = (TENSORRT, CUDA)
CUDNN_SEARCH = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")


class InvalidOutputError(RuntimeError):
    """A model produced NaN/inf or a wrongly shaped output; the runtime counted it."""


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a model; every field maps to a node parameter of the same name."""

    providers: str | Sequence[str] = "auto"
    """``auto`` (TensorRT → CUDA → CPU) or an explicit list (``cuda``, ``cpu``, full EP names)."""
    device_id: int = 0
    intra_op_threads: int = 0
    """0: ONNX Runtime's default (one per physical core)."""
    inter_op_threads: int = 0
    trt_cache_dir: str = ""
    """TensorRT engine cache; empty: ``~/.cache/robot_brain/tensorrt`` (engines take minutes to build)."""
    trt_fp16: bool = False
    cudnn_conv_algo_search: str = "HEURISTIC"
    """``EXHAUSTIVE`` benchmarks every convolution at start-up (slow first runs); HEURISTIC is predictable."""
    warmup_runs: int = 3
    log_severity: int = 3
    """ONNX Runtime's own log level (3: errors only)."""


@dataclass(frozen=True)
class ProviderReport:
    """What was asked for and what really runs the model."""

    requested: tuple[str, ...]
    active: tuple[str, ...]
    warning: str | None = None

    @property
    def primary(self) -> str:
        """The provider that runs (most of) the graph."""
        return self.active[0] if self.active else CPU

    @property
    def on_gpu(self) -> bool:
        """True only when ONNX Runtime really uses a GPU provider."""
        return self.primary in GPU_PROVIDERS


def nvidia_driver_present() -> bool:
    """True when the NVIDIA driver library loads (a prerequisite of every GPU provider)."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def resolve_providers(request: str | Sequence[str]) -> tuple[str, ...]:
    """Turn ``auto`` or a list of (aliased) names into ONNX Runtime provider names, CPU last.

    ``auto`` skips GPU providers when no NVIDIA driver is loadable, so CPU-only hosts do not
    get ONNX Runtime's library-loading errors on every start; the report says why.
    """
    available = ort.get_available_providers()
    if isinstance(request, str):
        request = [p.strip() for p in request.split(",") if p.strip()] if request != "auto" else ["auto"]
    if list(request) == ["auto"]:
        wanted = [p for p in AUTO_ORDER if p in available]
        if not nvidia_driver_present():
            wanted = [p for p in wanted if p not in GPU_PROVIDERS]
        return tuple(dict.fromkeys([*wanted, CPU]))
    resolved = []
    for name in request:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            raise ConfigurationError(f"providers: expected 'auto' or names from {', '.join(available)}, found {name!r}")
        resolved.append(full)
    if not resolved:
        raise ConfigurationError("providers: expected 'auto' or at least one provider name, found an empty list")
    return tuple(dict.fromkeys(resolved))


def _provider_entries(names: Sequence[str], options: RuntimeOptions) -> list[tuple[str, dict[str, object]]]:
    if options.cudnn_conv_algo_search not in CUDNN_SEARCH:
        raise ConfigurationError(
            f"cudnn_conv_algo_search: expected one of {', '.join(CUDNN_SEARCH)}, "
            f"found {options.cudnn_conv_algo_search!r}"
        )
    cache = Path(options.trt_cache_dir or Path.home() / ".cache" / "robot_brain" / "tensorrt").expanduser()
    entries: list[tuple[str, dict[str, object]]] = []
    for name in names:
        if name == TENSORRT:
            cache.mkdir(parents=True, exist_ok=True)
            entries.append(
                (
                    name,
                    {
                        "device_id": options.device_id,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache),
                        "trt_timing_cache_enable": True,
                        "trt_timing_cache_path": str(cache),
                        "trt_fp16_enable": options.trt_fp16,
                    },
                )
            )
        elif name == CUDA:
            entries.append(
                (
                    name,
                    {
                        "device_id": options.device_id,
                        "cudnn_conv_algo_search": options.cudnn_conv_algo_search,
                    },
                )
            )
        else:
            entries.append((name, {}))
    return entries


def _fallback_warning(request: str | Sequence[str], requested: Sequence[str], active: Sequence[str]) -> str | None:
    """The loud message when a GPU provider was asked for (or auto could not find one)."""
    primary = active[0] if active else CPU
    wanted_gpu = [p for p in requested if p in GPU_PROVIDERS]
    if request == "auto" and not wanted_gpu:
        return (
            "providers=auto found no usable GPU (no NVIDIA driver): running on CPUExecutionProvider; "
            "GPU inference is NOT in use"
        )
    if wanted_gpu and primary != wanted_gpu[0]:
        return (
            f"requested {wanted_gpu[0]} but ONNX Runtime is running on {primary} "
            f"(missing CUDA/cuDNN/TensorRT libraries or no GPU): GPU inference is NOT in use"
        )
    return None


def _numpy_dtype(name: str) -> np.dtype:
    return np.dtype(name)


def _static(shape: Sequence[Dim]) -> tuple[int, ...] | None:
    if all(isinstance(d, int) and d > 0 for d in shape):
        return tuple(int(d) for d in shape)  # type: ignore[arg-type]
    return None


def _merge_shape(contract_shape: Sequence[Dim] | None, graph_shape: Sequence[Dim]) -> tuple[Dim, ...]:
    """Contract sizes win where given; the graph fills the rest."""
    if contract_shape is None or len(contract_shape) != len(graph_shape):
        return tuple(graph_shape)
    return tuple(c if isinstance(c, int) else g for c, g in zip(contract_shape, graph_shape, strict=True))


@dataclass
class OutputCounters:
    """How many outputs were rejected and why (shown in diagnostics)."""

    non_finite: int = 0
    bad_shape: int = 0
    last_reason: str = ""
    total: int = 0

    @property
    def rejected(self) -> int:
        """Outputs never published."""
        return self.non_finite + self.bad_shape


class InferenceRuntime:
    """One ONNX Runtime session for one checked model, with honest provider reporting."""

    def __init__(self, model: LoadedModel, options: RuntimeOptions | None = None) -> None:
        self.model = model
        self.options = options or RuntimeOptions()
        requested = resolve_providers(self.options.providers)
        session_options = ort.SessionOptions()
        session_options.log_severity_level = self.options.log_severity
        session_options.intra_op_num_threads = max(0, int(self.options.intra_op_threads))
        session_options.inter_op_num_threads = max(0, int(self.options.inter_op_threads))
        try:
            self.session = ort.InferenceSession(
                model.model_bytes, session_options, providers=_provider_entries(requested, self.options)
            )
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
            text = str(error)
            if "opset" in text.lower():
                raise ModelContractError(
                    f"model {model.source}: expected an opset this onnxruntime {ort.__version__} supports, "
                    f"found opset {model.graph.opset}"
                ) from None
            first = text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__
            raise ModelContractError(
                f"model {model.source}: expected a model onnxruntime can load, found: {first}"
            ) from None
        active = tuple(self.session.get_providers())
        self.providers = ProviderReport(
            requested=requested,
            active=active,
            warning=_fallback_warning(self.options.providers, requested, active),
        )
        self.counters = OutputCounters()
        contract = model.contract
        graph_in = {t.name: t for t in model.graph.inputs}
        graph_out = {t.name: t for t in model.graph.outputs}
        in_specs = {s.name: s.shape for s in contract.inputs} if contract else {}
        out_specs = {s.name: s.shape for s in contract.outputs} if contract else {}
        self.inputs: dict[str, TensorInfo] = {
            n: TensorInfo(n, t.dtype, _merge_shape(in_specs.get(n), t.shape)) for n, t in graph_in.items()
        }
        output_names = [s.name for s in contract.outputs] if contract else list(graph_out)
        self.outputs: dict[str, TensorInfo] = {
            n: TensorInfo(n, graph_out[n].dtype, _merge_shape(out_specs.get(n), graph_out[n].shape))
            for n in output_names
        }
        self._binding = self.session.io_binding()
        self._input_buffers: dict[str, np.ndarray] = {}
        for name, info in self.inputs.items():
            shape = _static(info.shape)
            if shape is not None:
                buffer = np.zeros(shape, dtype=_numpy_dtype(info.dtype))
                self._input_buffers[name] = buffer
                self._binding.bind_cpu_input(name, buffer)
        self._output_buffers: dict[str, np.ndarray] = {}
        for name, info in self.outputs.items():
            shape = _static(info.shape)
            if shape is not None:
                buffer = np.zeros(shape, dtype=_numpy_dtype(info.dtype))
                self._output_buffers[name] = buffer
                self._binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(buffer))
            else:
                self._binding.bind_output(name, "cpu")
        self._output_names = tuple(self.outputs)
        self._float_outputs = tuple(n for n, t in self.outputs.items() if np.dtype(t.dtype).kind == "f")
        self.warmup_s = self.warm_up(self.options.warmup_runs)

    def input_buffer(self, name: str) -> np.ndarray | None:
        """The pre-bound array of a static input: fill it in place to skip the copy in :meth:`run`."""
        return self._input_buffers.get(name)

    def warm_up(self, runs: int) -> float:
        """Run ``runs`` times on zeros (first CUDA/TensorRT runs build kernels/engines); seconds taken."""
        if runs <= 0:
            return 0.0
        feeds = {}
        for name, info in self.inputs.items():
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in info.shape)
            feeds[name] = np.zeros(shape, dtype=_numpy_dtype(info.dtype))
        start = time.perf_counter()
        for _ in range(runs):
            self.session.run(None, feeds)
        return time.perf_counter() - start

    def run(self, feeds: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run once; ``feeds`` may omit inputs already written with :meth:`input_buffer`.

        Returned arrays of static outputs are the runtime's own buffers, overwritten by the
        next call: copy what you keep. Raises :class:`InvalidOutputError` on NaN/inf or a
        wrong shape (after counting it).
        """
        if feeds:
            for name, value in feeds.items():
                buffer = self._input_buffers.get(name)
                if buffer is not None:
                    if value is not buffer:
                        if value.shape != buffer.shape and value.size != buffer.size:
                            raise ValueError(f"input '{name}': expected shape {buffer.shape}, found {value.shape}")
                        np.copyto(buffer, value.reshape(buffer.shape), casting="unsafe")
                else:
                    info = self.inputs[name]
                    self._binding.bind_cpu_input(name, np.ascontiguousarray(value, dtype=_numpy_dtype(info.dtype)))
        try:
            self.session.run_with_iobinding(self._binding)
        except Exception as error:  # onnxruntime's Fail/RuntimeException: bad shapes at run time
            self.counters.total += 1
            self.counters.bad_shape += 1
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            self.counters.last_reason = f"model run failed (output shape or runtime error): {first}"
            raise InvalidOutputError(self.counters.last_reason) from None
        if len(self._output_buffers) == len(self._output_names):
            outputs = self._output_buffers
        else:
            values = self._binding.copy_outputs_to_cpu()
            outputs = dict(zip(self._output_names, values, strict=True))
        self._check(outputs)
        return outputs

    def _check(self, outputs: Mapping[str, np.ndarray]) -> None:
        self.counters.total += 1
        for name in self._float_outputs:
            value = outputs[name]
            if not np.isfinite(value).all():
                self.counters.non_finite += 1
                self.counters.last_reason = f"output '{name}': expected finite values, found NaN/inf"
                raise InvalidOutputError(self.counters.last_reason)
        if self._output_buffers and len(self._output_buffers) == len(self._output_names):
            return  # static outputs were written into buffers of the expected shape
        for name, value in outputs.items():
            expected = self.outputs[name].shape
            if len(value.shape) != len(expected) or any(
                isinstance(e, int) and e > 0 and e != v for e, v in zip(expected, value.shape, strict=True)
            ):
                self.counters.bad_shape += 1
                self.counters.last_reason = (
                    f"output '{name}': expected shape {list(expected)}, found {list(value.shape)}"
                )
                raise InvalidOutputError(self.counters.last_reason)
