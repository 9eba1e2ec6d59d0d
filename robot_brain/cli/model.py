"""``robot-brain model``: inspect a model's contract, validate it against an arm, write the demo policy.

* ``inspect MODEL [--contract SIDECAR] [--json]``: the contract, the graph's real inputs and
  outputs, and every mismatch between them. Exit 0 when usable, 1 when there are mismatches.
* ``validate MODEL --urdf URDF``: whether the model can drive that arm (exit 0 yes, 1 no).
* ``demo OUTPUT``: write the bundled hand-written reach controller as an ONNX file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from robot_brain.inference.contract import dump_yaml
from robot_brain.inference.model import LoadedModel, load_model
from robot_brain.inference.observation import check_arm_compatibility
from robot_brain.inference.reach_policy import write_reach_policy

EXIT_OK, EXIT_MISMATCH = 0, 1


def register(subparsers: Any) -> None:
    """Add ``model`` and its sub-subcommands."""
    parser = subparsers.add_parser("model", help="inspect and validate ONNX models and their contracts")
    commands = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    inspect = commands.add_parser("inspect", help="print the contract, the graph's inputs/outputs and mismatches")
    inspect.add_argument("model", help="ONNX file")
    inspect.add_argument("--contract", help="YAML/JSON sidecar that supplies or overrides the contract")
    inspect.add_argument("--json", action="store_true", help="print one JSON document")
    inspect.set_defaults(func=_inspect)

    validate = commands.add_parser("validate", help="can this model drive this arm?")
    validate.add_argument("model", help="ONNX file")
    validate.add_argument("--urdf", required=True, help="URDF/xacro file of the robot")
    validate.add_argument("--contract", help="YAML/JSON sidecar that supplies or overrides the contract")
    validate.add_argument("--base-link", help="arm base link (default: detected)")
    validate.add_argument("--tip-link", help="arm tip link (default: detected)")
    validate.set_defaults(func=_validate)

    demo = commands.add_parser("demo", help="write the hand-written reach controller (not learned) as ONNX")
    demo.add_argument("output", help="path of the .onnx file to write")
    demo.set_defaults(func=_demo)


def _report(model: LoadedModel) -> dict[str, Any]:
    def tensors(items: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in items]

    graph = model.file_graph or model.graph
    return {
        "model": model.source,
        "model_id": model.model_id,
        "sha256": model.sha256,
        "opset": model.graph.opset,
        "producer": model.graph.producer,
        "graph": {"inputs": tensors(graph.inputs), "outputs": tensors(graph.outputs)},
        "reshaped_for_session": model.file_graph is not None,
        "contract": model.contract.to_dict() if model.contract else None,
        "mismatches": list(model.problems)
        + ([] if model.contract else ["contract: expected metadata 'robot_brain.contract' or a sidecar, found none"]),
    }


def _inspect(args: argparse.Namespace) -> int:
    model = load_model(args.model, sidecar=args.contract, require_contract=False)
    report = _report(model)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_MISMATCH if report["mismatches"] else EXIT_OK
    print(f"model     {report['model']}")
    print(f"id        {report['model_id']}   opset {report['opset']}   producer {report['producer'] or '-'}")
    for kind in ("inputs", "outputs"):
        print(f"graph {kind}:")
        for tensor in report["graph"][kind]:
            print(f"  {tensor['name']:<24} {tensor['dtype']:<8} {tensor['shape']}")
    if model.contract is not None:
        print("contract:")
        print("  " + dump_yaml(model.contract).rstrip().replace("\n", "\n  "))
    if report["mismatches"]:
        print("mismatches:")
        for problem in report["mismatches"]:
            print(f"  - {problem}")
        return EXIT_MISMATCH
    print("mismatches: none")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from robot_brain.embodiment import load_arm  # pinocchio is imported only for this command

    model = load_model(args.model, sidecar=args.contract)
    contract = model.require_contract()
    arm = load_arm(args.urdf, base_link=args.base_link, tip_link=args.tip_link)
    gripper = contract.gripper_joints or tuple(arm.spec.gripper_joints)
    problems = check_arm_compatibility(contract, tuple(arm.spec.joint_names), tuple(gripper))
    action = contract.action_output if contract.kind == "policy" else None
    arm_text = f"{arm.spec.dof}-DOF arm {arm.spec.base_link} -> {arm.spec.tip_link}"
    if problems:
        print(f"NO: {model.model_id} cannot drive the {arm_text}:")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_MISMATCH
    space = f" ({action.action_space}, dim {action.dim})" if action else ""
    via_ik = " through IK" if action and action.action_space.startswith("ee_") else ""
    print(f"OK: {model.model_id}{space} can drive the {arm_text}{via_ik}")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    path = write_reach_policy(args.output)
    print(f"wrote the hand-written reach controller (not a learned policy) to {path}")
    return EXIT_OK
