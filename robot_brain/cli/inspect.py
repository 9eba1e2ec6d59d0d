"""``robot-brain inspect``: what the brain sees in a robot description.

Prints the arm chain, its limits and gripper so an integrator can check, before anything
moves, that the automatic chain detection picked the right joints.
"""

from __future__ import annotations

import argparse
import json
import math

from robot_brain.embodiment import ArmSpec, load_arm


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show the arm chain, limits and gripper found in a URDF/xacro",
        description="Load a robot description (.urdf, .xacro) and print the arm the brain will drive.",
    )
    parser.add_argument("path", help="robot description: .urdf or .xacro file")
    parser.add_argument("--base", dest="base_link", help="base link of the chain (default: automatic)")
    parser.add_argument("--tip", dest="tip_link", help="tip (tool) link of the chain (default: automatic)")
    parser.add_argument(
        "--xacro-arg",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="xacro argument, repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def parse_xacro_args(pairs: list[str]) -> dict[str, str]:
    """``["a:=1", "b:=x"]`` → ``{"a": "1", "b": "x"}``, with a clear error for other shapes."""
    from robot_brain.errors import UserError

    mappings: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition(":=")
        if not separator or not name:
            raise UserError(f"xacro argument '{pair}' should look like NAME:=VALUE")
        mappings[name] = value
    return mappings


def run(args: argparse.Namespace) -> int:
    arm = load_arm(
        args.path, base_link=args.base_link, tip_link=args.tip_link, xacro_args=parse_xacro_args(args.xacro_arg)
    )
    if args.json:
        print(json.dumps(arm.spec.as_dict()))
    else:
        print(format_spec(arm.spec))
    return 0


def format_spec(spec: ArmSpec) -> str:
    """A readable table of the arm: chain, limits, gripper, warnings."""

    def number(value: float) -> str:
        return f"{value:9.4f}" if math.isfinite(value) else "      inf" if value > 0 else "     -inf"

    lines = [
        f"robot      {spec.name}",
        f"chain      {spec.base_link} -> {spec.tip_link} ({spec.dof} joints)",
        "",
        f"  {'joint':<28} {'type':<10} {'lower':>9} {'upper':>9} {'velocity':>9} {'effort':>9}",
    ]
    for index, name in enumerate(spec.joint_names):
        lines.append(
            f"  {name:<28} {spec.joint_types[index]:<10} {number(spec.lower[index])} "
            f"{number(spec.upper[index])} {spec.velocity[index]:9.4f} {spec.effort[index]:9.2f}"
        )
    lines.append("")
    lines.append(f"gripper    {', '.join(spec.gripper_joints) if spec.gripper_joints else 'none found'}")
    if spec.mimic_joints:
        lines.append(
            "mimic      " + ", ".join(f"{joint} follows {leader}" for joint, leader in spec.mimic_joints.items())
        )
    for warning in spec.warnings:
        lines.append(f"warning    {warning}")
    return "\n".join(lines)
