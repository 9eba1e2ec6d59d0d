"""The model contract: what an ONNX policy or vision model needs and what it returns.

A model declares its contract as one JSON document in the ONNX file's ``metadata_props``
under :data:`METADATA_KEY`; a YAML (or JSON) sidecar can supply it for models that carry
none, or override the embedded one key by key. The contract is what lets one runtime drive
any model: it names each graph input's *role* (where the node gets the data), each
output's meaning (action space, horizon, time step), the normalisation statistics and the
rate the model was trained at. ``docs/model_contract.md`` is the user-facing reference.

This module is pure (no onnxruntime, no rclpy): parsing, validation and the comparison
with a graph's declared inputs and outputs, so ``robot-brain model inspect`` and the nodes
report the same mismatches in the same words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_brain.errors import ModelContractError

METADATA_KEY = "robot_brain.contract"
"""Key of the ``metadata_props`` entry that holds the contract's JSON document."""

SCHEMA_VERSION = 1

# Input roles: where a node gets each input's data.
ROLE_IMAGE = "image"
ROLE_JOINT_POSITIONS = "joint_positions"
ROLE_JOINT_VELOCITIES = "joint_velocities"
ROLE_EE_POSE = "ee_pose"
ROLE_GRIPPER_STATE = "gripper_state"
ROLE_TASK_ID = "task_id"
ROLE_TARGET_POINT = "target_point"
INPUT_ROLES = (
    ROLE_IMAGE,
    ROLE_JOINT_POSITIONS,
    ROLE_JOINT_VELOCITIES,
    ROLE_EE_POSE,
    ROLE_GRIPPER_STATE,
    ROLE_TASK_ID,
    ROLE_TARGET_POINT,
)

# Output roles: an action chunk for a policy; tensors or heatmaps for a vision model.
ROLE_ACTION_CHUNK = "action_chunk"
ROLE_TENSOR = "tensor"
ROLE_HEATMAP = "heatmap"
OUTPUT_ROLES = (ROLE_ACTION_CHUNK, ROLE_TENSOR, ROLE_HEATMAP)

# Action spaces, with the per-waypoint size of the arm part (None: the arm's DOF).
ACTION_SPACE_SIZES: dict[str, int | None] = {
    "joint_position": None,
    "joint_delta": None,
    "ee_pose": 7,
    "ee_pose_delta": 7,
    "ee_twist": 6,
}
JOINT_ACTION_SPACES = ("joint_position", "joint_delta")

DTYPES = ("float32", "float64", "float16", "int64", "int32", "uint8", "bool")
CHANNEL_ORDERS = ("rgb", "bgr", "mono")
LAYOUTS = ("chw", "hwc")

Dim = int | str | None
"""One dimension: a size, a symbolic name, or None for 'any'."""


def _fail(where: str, expected: str, found: object) -> ModelContractError:
    return ModelContractError(f"contract {where}: expected {expected}, found {found!r}")


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ModelContractError(f"contract {where}: expected key '{key}', found keys {sorted(data)}")
    return data[key]


def _as_float_list(value: Any, where: str, length: int | None = None) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _fail(where, "a list of numbers", value)
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise _fail(where, "a list of numbers", value) from None
    if not all(math.isfinite(v) for v in numbers):
        raise _fail(where, "finite numbers", value)
    if length is not None and len(numbers) not in (1, length):
        raise _fail(where, f"1 or {length} numbers", value)
    return numbers


def _check_choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise _fail(where, "one of " + ", ".join(choices), value)
    return str(value)


def _parse_shape(value: Any, where: str) -> tuple[Dim, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _fail(where, "a list of sizes (int, name or null)", value)
    dims: list[Dim] = []
    for dim in value:
        if isinstance(dim, bool) or not (dim is None or isinstance(dim, (int, str))):
            raise _fail(where, "a list of sizes (int, name or null)", value)
        if isinstance(dim, int) and dim < 0:
            raise _fail(where, "non-negative sizes", value)
        dims.append(dim)
    return tuple(dims)


@dataclass(frozen=True)
class ImageSpec:
    """How a camera image becomes this input tensor (see :mod:`robot_brain.perception.preprocess`)."""

    width: int
    height: int
    channel_order: str = "rgb"
    layout: str = "chw"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> ImageSpec:
        """Parse and check one ``image`` block."""
        if not isinstance(data, Mapping):
            raise _fail(where, "a mapping with width, height, channel_order, ...", data)
        width, height = _require(data, "width", where), _require(data, "height", where)
        for key, size in (("width", width), ("height", height)):
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise _fail(f"{where}.{key}", "a positive integer", size)
        order = _check_choice(data.get("channel_order", "rgb"), CHANNEL_ORDERS, f"{where}.channel_order")
        channels = 1 if order == "mono" else 3
        std = _as_float_list(data.get("std", [1.0]), f"{where}.std", channels)
        if any(s == 0.0 for s in std):
            raise _fail(f"{where}.std", "non-zero values", list(std))
        return cls(
            width=width,
            height=height,
            channel_order=order,
            layout=_check_choice(data.get("layout", "chw"), LAYOUTS, f"{where}.layout"),
            scale=_as_float_list(data.get("scale", 1.0 / 255.0), f"{where}.scale", 1)[0],
            mean=_as_float_list(data.get("mean", [0.0]), f"{where}.mean", channels),
            std=std,
        )

    @property
    def channels(self) -> int:
        """Number of colour channels the model expects."""
        return 1 if self.channel_order == "mono" else 3


@dataclass(frozen=True)
class InputSpec:
    """One graph input and where its data comes from."""

    name: str
    role: str
    dtype: str = "float32"
    shape: tuple[Dim, ...] | None = None
    topic: str | None = None
    image: ImageSpec | None = None
    synchronized: bool = True
    """False for slowly changing inputs (a target) that need not be time-aligned with the others."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> InputSpec:
        """Parse and check one entry of ``inputs``."""
        if not isinstance(data, Mapping):
            raise _fail(where, "a mapping with name and role", data)
        name = str(_require(data, "name", where))
        role = _check_choice(_require(data, "role", where), INPUT_ROLES, f"{where}.role")
        image = None
        if role == ROLE_IMAGE:
            image = ImageSpec.from_dict(_require(data, "image", where), f"{where}.image")
        topic = data.get("topic")
        if topic is not None and (not isinstance(topic, str) or not topic):
            raise _fail(f"{where}.topic", "a topic name", topic)
        return cls(
            name=name,
            role=role,
            dtype=_check_choice(data.get("dtype", "float32"), DTYPES, f"{where}.dtype"),
            shape=_parse_shape(data.get("shape"), f"{where}.shape"),
            topic=topic,
            image=image,
            synchronized=bool(data.get("synchronized", True)),
        )


@dataclass(frozen=True)
class OutputSpec:
    """One graph output and what it means."""

    name: str
    role: str
    dtype: str = "float32"
    shape: tuple[Dim, ...] | None = None
    action_space: str | None = None
    horizon: int = 1
    dt: float = 0.0
    dim: int = 0
    gripper: bool = False
    topic: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> OutputSpec:
        """Parse and check one entry of ``outputs``; an action chunk needs space, horizon, dt, dim."""
        if not isinstance(data, Mapping):
            raise _fail(where, "a mapping with name and role", data)
        name = str(_require(data, "name", where))
        role = _check_choice(_require(data, "role", where), OUTPUT_ROLES, f"{where}.role")
        spec = cls(
            name=name,
            role=role,
            dtype=_check_choice(data.get("dtype", "float32"), DTYPES, f"{where}.dtype"),
            shape=_parse_shape(data.get("shape"), f"{where}.shape"),
            topic=data.get("topic"),
        )
        if role != ROLE_ACTION_CHUNK:
            return spec
        space = _check_choice(_require(data, "action_space", where), tuple(ACTION_SPACE_SIZES), f"{where}.action_space")
        horizon, dim = _require(data, "horizon", where), _require(data, "dim", where)
        for key, value in (("horizon", horizon), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise _fail(f"{where}.{key}", "a positive integer", value)
        dt = _as_float_list(_require(data, "dt", where), f"{where}.dt", 1)[0]
        if dt <= 0.0:
            raise _fail(f"{where}.dt", "a time step > 0 s", dt)
        gripper = bool(data.get("gripper", False))
        arm_size = ACTION_SPACE_SIZES[space]
        if arm_size is not None and dim != arm_size + int(gripper):
            raise _fail(
                f"{where}.dim",
                f"{arm_size + int(gripper)} for {space}{' + gripper' if gripper else ''}",
                dim,
            )
        return cls(
            name=name,
            role=role,
            dtype=spec.dtype,
            shape=spec.shape,
            action_space=space,
            horizon=horizon,
            dt=dt,
            dim=dim,
            gripper=gripper,
            topic=spec.topic,
        )

    @property
    def arm_dim(self) -> int:
        """Values per waypoint for the arm, without the gripper channel."""
        return self.dim - int(self.gripper)


@dataclass(frozen=True)
class Normalization:
    """Statistics of one input or output: the model sees ``(x - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelContract:
    """Everything a node needs to feed a model and to interpret what it returns."""

    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    kind: str = "policy"
    description: str = ""
    learned: bool = True
    control_rate_hz: float | None = None
    joint_names: tuple[str, ...] = ()
    gripper_joints: tuple[str, ...] = ()
    normalization: dict[str, Normalization] = field(default_factory=dict)
    reshape_graph: bool = False
    """Rewrite the graph's declared input shapes to the contract's (models exported with placeholder
    static shapes, such as CenterFace's ``10x3x32x32``)."""
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelContract:
        """Parse and check a whole contract document; raises :class:`ModelContractError`."""
        if not isinstance(data, Mapping):
            raise _fail("document", "a mapping", type(data).__name__)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise _fail("schema_version", str(SCHEMA_VERSION), version)
        kind = _check_choice(data.get("kind", "policy"), ("policy", "vision"), "kind")
        raw_inputs, raw_outputs = _require(data, "inputs", "document"), _require(data, "outputs", "document")
        for key, raw in (("inputs", raw_inputs), ("outputs", raw_outputs)):
            if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
                raise _fail(key, "a non-empty list", raw)
        inputs = tuple(InputSpec.from_dict(d, f"inputs[{i}]") for i, d in enumerate(raw_inputs))
        outputs = tuple(OutputSpec.from_dict(d, f"outputs[{i}]") for i, d in enumerate(raw_outputs))
        for key, specs in (("inputs", inputs), ("outputs", outputs)):
            names = [s.name for s in specs]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise _fail(key, "unique names", duplicates)
        chunks = [o for o in outputs if o.role == ROLE_ACTION_CHUNK]
        if kind == "policy" and len(chunks) != 1:
            raise _fail("outputs", "exactly one output with role action_chunk for a policy", len(chunks))
        rate = data.get("control_rate_hz")
        if rate is not None:
            rate = _as_float_list(rate, "control_rate_hz", 1)[0]
            if rate <= 0.0:
                raise _fail("control_rate_hz", "a rate > 0 Hz", rate)
        normalization = cls._parse_normalization(data.get("normalization") or {}, inputs, outputs)
        return cls(
            name=str(data.get("name") or "unnamed"),
            inputs=inputs,
            outputs=outputs,
            kind=kind,
            description=str(data.get("description", "")),
            learned=bool(data.get("learned", True)),
            control_rate_hz=rate,
            joint_names=tuple(str(n) for n in data.get("joint_names") or ()),
            gripper_joints=tuple(str(n) for n in data.get("gripper_joints") or ()),
            normalization=normalization,
            reshape_graph=bool(data.get("reshape_graph", False)),
        )

    @staticmethod
    def _parse_normalization(
        raw: Any, inputs: Sequence[InputSpec], outputs: Sequence[OutputSpec]
    ) -> dict[str, Normalization]:
        if not isinstance(raw, Mapping):
            raise _fail("normalization", "a mapping from input/output name to {mean, std}", raw)
        known = {s.name for s in inputs} | {s.name for s in outputs}
        result: dict[str, Normalization] = {}
        for name, stats in raw.items():
            where = f"normalization.{name}"
            if name not in known:
                raise _fail(where, "the name of an input or output: " + ", ".join(sorted(known)), name)
            if not isinstance(stats, Mapping):
                raise _fail(where, "a mapping with mean and std", stats)
            mean = _as_float_list(_require(stats, "mean", where), f"{where}.mean")
            std = _as_float_list(_require(stats, "std", where), f"{where}.std")
            if len(mean) != len(std) and 1 not in (len(mean), len(std)):
                raise _fail(where, f"mean and std of equal length ({len(mean)})", len(std))
            if any(s <= 0.0 for s in std):
                raise _fail(f"{where}.std", "values > 0", list(std))
            result[str(name)] = Normalization(mean=mean, std=std)
        return result

    @property
    def action_output(self) -> OutputSpec:
        """The policy's action-chunk output."""
        for output in self.outputs:
            if output.role == ROLE_ACTION_CHUNK:
                return output
        raise ModelContractError(f"contract of {self.name}: expected an action_chunk output, found none")

    def inputs_with_role(self, role: str) -> tuple[InputSpec, ...]:
        """Inputs that take their data from ``role``."""
        return tuple(s for s in self.inputs if s.role == role)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready document (inverse of :meth:`from_dict`)."""
        data = asdict(self)
        data["normalization"] = {k: {"mean": list(v.mean), "std": list(v.std)} for k, v in self.normalization.items()}
        for spec in data["inputs"]:
            if spec["image"] is None:
                del spec["image"]
        return _lists(data)


def _lists(value: Any) -> Any:
    """Tuples to lists, recursively, so JSON and YAML dumps stay plain."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def merge_documents(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Sidecar over embedded contract: top-level keys of ``override`` replace those of ``base``."""
    merged = dict(base or {})
    merged.update(override or {})
    return merged


def parse_document_text(text: str, source: str) -> dict[str, Any]:
    """Parse a JSON or YAML contract document (YAML is a superset of JSON)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelContractError(f"contract {source}: expected JSON or YAML, found a syntax error ({first})") from None
    if not isinstance(data, dict):
        raise ModelContractError(f"contract {source}: expected a mapping, found {type(data).__name__}")
    return data


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read a YAML/JSON sidecar contract file."""
    path = Path(path)
    if not path.is_file():
        raise ModelContractError(f"contract sidecar: expected a file at {path}, found nothing")
    return parse_document_text(path.read_text(encoding="utf-8"), str(path))


def embedded_document(metadata: Mapping[str, str]) -> dict[str, Any] | None:
    """The contract embedded in a model's ``metadata_props`` (as a dict), or None."""
    text = metadata.get(METADATA_KEY)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelContractError(
            f"metadata '{METADATA_KEY}': expected a JSON document, found invalid JSON ({error.msg})"
        ) from None
    if not isinstance(data, dict):
        raise ModelContractError(f"metadata '{METADATA_KEY}': expected a JSON object, found {type(data).__name__}")
    return data


def contract_json(contract: ModelContract | Mapping[str, Any]) -> str:
    """The compact JSON text stored under :data:`METADATA_KEY`."""
    data = contract.to_dict() if isinstance(contract, ModelContract) else dict(contract)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as the ONNX file declares it."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]


def check_against_graph(
    contract: ModelContract, graph_inputs: Sequence[TensorInfo], graph_outputs: Sequence[TensorInfo]
) -> list[str]:
    """Every disagreement between the contract and the graph, each one line saying expected vs found.

    Names must match both ways for inputs (an unfed graph input cannot run); every contract
    output must exist in the graph (extra graph outputs are ignored). Ranks, dtypes and
    static dimensions must agree where both sides state them. With ``reshape_graph`` the
    graph's static input sizes are placeholders and only ranks are compared for inputs.
    """
    problems: list[str] = []
    graph_in = {t.name: t for t in graph_inputs}
    graph_out = {t.name: t for t in graph_outputs}
    for spec in contract.inputs:
        if spec.name not in graph_in:
            problems.append(f"input '{spec.name}': expected in the graph, found inputs {sorted(graph_in)}")
            continue
        problems += _compare(
            f"input '{spec.name}'",
            spec.dtype,
            spec.shape,
            graph_in[spec.name],
            ranks_only=contract.reshape_graph,
        )
    for name in sorted(set(graph_in) - {s.name for s in contract.inputs}):
        problems.append(f"graph input '{name}': expected a contract entry with its role, found none")
    for spec in contract.outputs:
        if spec.name not in graph_out:
            problems.append(f"output '{spec.name}': expected in the graph, found outputs {sorted(graph_out)}")
            continue
        problems += _compare(
            f"output '{spec.name}'",
            spec.dtype,
            spec.shape,
            graph_out[spec.name],
            ranks_only=contract.reshape_graph,
        )
        if spec.role == ROLE_ACTION_CHUNK:
            problems += _check_chunk_size(spec, graph_out[spec.name])
    return problems


def _compare(where: str, dtype: str, shape: tuple[Dim, ...] | None, graph: TensorInfo, ranks_only: bool) -> list[str]:
    problems = []
    if graph.dtype != dtype:
        problems.append(f"{where}: expected dtype {dtype}, found {graph.dtype} in the graph")
    if shape is None:
        return problems
    if len(shape) != len(graph.shape):
        problems.append(
            f"{where}: expected rank {len(shape)} {list(shape)}, found rank {len(graph.shape)} "
            f"{list(graph.shape)} in the graph"
        )
        return problems
    if ranks_only:
        return problems
    for axis, (want, have) in enumerate(zip(shape, graph.shape, strict=True)):
        if isinstance(want, int) and isinstance(have, int) and want != have:
            problems.append(
                f"{where}: expected size {want} on axis {axis} {list(shape)}, found {have} "
                f"{list(graph.shape)} in the graph"
            )
    return problems


def _check_chunk_size(spec: OutputSpec, graph: TensorInfo) -> list[str]:
    """A chunk output's static element count must equal horizon x dim (batch 1)."""
    dims = spec.shape if spec.shape is not None else graph.shape
    if not all(isinstance(d, int) for d in dims) or not dims:
        return []
    size = math.prod(int(d) for d in dims)  # type: ignore[arg-type]
    if size != spec.horizon * spec.dim:
        return [
            f"output '{spec.name}': expected horizon x dim = {spec.horizon} x {spec.dim} = "
            f"{spec.horizon * spec.dim} values, found shape {list(dims)} ({size} values)"
        ]
    return []


def dump_yaml(contract: ModelContract) -> str:
    """The contract as a YAML sidecar (what ``robot-brain model inspect`` can write out)."""
    return yaml.safe_dump(contract.to_dict(), sort_keys=False, default_flow_style=None)
