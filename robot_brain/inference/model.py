"""Loading an ONNX model file with its contract, and every check that can fail before a session exists.

Missing files, corrupt files, unsupported opsets, SHA-256 mismatches and contract/graph
disagreements are each turned into one :class:`ModelContractError` line, so a node fails its
``configure`` transition (and ``robot-brain model`` exits 2) with the reason, not a traceback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from robot_brain.errors import ModelContractError
from robot_brain.inference.contract import (
    METADATA_KEY,
    ModelContract,
    TensorInfo,
    check_against_graph,
    contract_json,
    embedded_document,
    merge_documents,
    read_sidecar,
)

MIN_OPSET = 7
"""Oldest default-domain opset ONNX Runtime loads."""


@dataclass(frozen=True)
class GraphInfo:
    """The graph's real inputs (initializers excluded) and outputs, as declared in the file."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opset: int
    producer: str


@dataclass(frozen=True)
class LoadedModel:
    """A checked model: serialized bytes for the session, its contract, its graph and identity."""

    source: str
    model_bytes: bytes
    contract: ModelContract | None
    graph: GraphInfo
    """The graph as the session sees it (after ``reshape_graph``)."""
    sha256: str
    problems: tuple[str, ...]
    """Contract/graph mismatches (empty when the model is usable)."""
    file_graph: GraphInfo | None = None
    """The graph as declared in the file, when ``reshape_graph`` changed it (else None: same as ``graph``)."""

    @property
    def model_id(self) -> str:
        """``name@sha256-prefix``: what ActionChunk.model_id and diagnostics carry."""
        name = self.contract.name if self.contract is not None else Path(self.source).stem
        return f"{name}@{self.sha256[:12]}"

    def require_contract(self) -> ModelContract:
        """The contract, or an error saying the model has none and how to give one."""
        if self.contract is None:
            raise ModelContractError(
                f"model {self.source}: expected a contract in metadata_props or a sidecar YAML, found none"
            )
        if self.problems:
            raise ModelContractError(
                f"model {self.source}: {self.problems[0]}"
                + (f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else "")
            )
        return self.contract


def _dtype_name(elem_type: int) -> str:
    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _tensor_info(value_info: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value_info.type.tensor_type
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorInfo(name=value_info.name, dtype=_dtype_name(tensor_type.elem_type), shape=tuple(dims))


def graph_info(model: onnx.ModelProto) -> GraphInfo:
    """Inputs (without initializers, which old exporters list as inputs), outputs and opset."""
    initializers = {t.name for t in model.graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return GraphInfo(
        inputs=tuple(_tensor_info(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(_tensor_info(v) for v in model.graph.output),
        opset=int(opset),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
    )


def _read_bytes(source: str | Path | bytes) -> tuple[str, bytes]:
    if isinstance(source, bytes):
        return "<bytes>", source
    path = Path(source)
    if not path.is_file():
        raise ModelContractError(f"model: expected an ONNX file at {path}, found nothing")
    return str(path), path.read_bytes()


def _parse(name: str, data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # protobuf raises DecodeError or RuntimeWarning-derived errors
        raise ModelContractError(
            f"model {name}: expected a valid ONNX protobuf, found a corrupt file ({type(error).__name__})"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise ModelContractError(f"model {name}: expected an ONNX graph, found an empty or corrupt file")
    max_opset = onnx.defs.onnx_opset_version()
    opset = graph_info(model).opset
    if not MIN_OPSET <= opset <= max_opset:
        raise ModelContractError(f"model {name}: expected ONNX opset {MIN_OPSET}..{max_opset}, found opset {opset}")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "invalid graph"
        raise ModelContractError(f"model {name}: expected a valid ONNX graph, found: {first}") from None
    return model


def _reshape_inputs(model: onnx.ModelProto, contract: ModelContract) -> None:
    """Give graph inputs the contract's shapes and make conflicting output sizes symbolic."""
    by_name = {s.name: s for s in contract.inputs}
    for value_info in model.graph.input:
        spec = by_name.get(value_info.name)
        if spec is None or spec.shape is None:
            continue
        shape = value_info.type.tensor_type.shape
        for axis, dim in enumerate(spec.shape):
            shape.dim[axis].Clear()
            if isinstance(dim, int):
                shape.dim[axis].dim_value = dim
            else:
                shape.dim[axis].dim_param = dim or f"{spec.name}_d{axis}"
    for value_info in model.graph.output:
        for axis, dim in enumerate(value_info.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"{value_info.name}_d{axis}"
    del model.graph.value_info[:]


def load_model(
    source: str | Path | bytes,
    *,
    sha256: str | None = None,
    sidecar: str | Path | Mapping[str, Any] | None = None,
    require_contract: bool = True,
) -> LoadedModel:
    """Read, verify and describe one ONNX model.

    ``sha256`` (hex, optional) must match the file. ``sidecar`` (a YAML/JSON path or a dict)
    supplies or overrides the contract embedded under ``robot_brain.contract``. With
    ``require_contract`` (what the nodes use) a missing contract or any contract/graph
    mismatch raises; without it (``robot-brain model inspect``) they are returned for display.
    """
    name, data = _read_bytes(source)
    digest = hashlib.sha256(data).hexdigest()
    if sha256:
        expected = sha256.strip().lower()
        if expected != digest:
            raise ModelContractError(f"model {name}: expected SHA-256 {expected}, found {digest}")
    model = _parse(name, data)
    metadata = {p.key: p.value for p in model.metadata_props}
    override = read_sidecar(sidecar) if isinstance(sidecar, (str, Path)) else sidecar
    document = (
        merge_documents(embedded_document(metadata), override) if (metadata.get(METADATA_KEY) or override) else None
    )
    contract = ModelContract.from_dict(document) if document is not None else None
    graph = graph_info(model)
    problems: list[str] = []
    if contract is not None:
        problems = check_against_graph(contract, graph.inputs, graph.outputs)
    file_graph = None
    if contract is not None and contract.reshape_graph and not problems:
        _reshape_inputs(model, contract)
        data = model.SerializeToString()
        file_graph, graph = graph, graph_info(model)
    loaded = LoadedModel(
        source=name,
        model_bytes=data,
        contract=contract,
        graph=graph,
        sha256=digest,
        problems=tuple(problems),
        file_graph=file_graph,
    )
    if require_contract:
        loaded.require_contract()
    return loaded


def embed_contract(model: onnx.ModelProto, contract: ModelContract | Mapping[str, Any]) -> onnx.ModelProto:
    """Store (or replace) the contract in ``model.metadata_props``; returns the same model."""
    for index, prop in enumerate(model.metadata_props):
        if prop.key == METADATA_KEY:
            del model.metadata_props[index]
            break
    helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, METADATA_KEY: contract_json(contract)}
    )
    return model
