"""Draw the default teleop button map on a game pad, from the mapping in the code (so the picture cannot drift).

    .venv/bin/python tools/draw_teleop_pad.py                 # writes docs/images/teleop_pad.png
    .venv/bin/python tools/draw_teleop_pad.py --markdown      # prints the button-map table of docs/teleop.md
    .venv/bin/python tools/draw_teleop_pad.py --parameters    # prints its parameter table

Both read :meth:`robot_brain.teleop.mapping.TeleopMapping.controls` of the default mapping;
``test/teleop/test_teleop_docs.py`` checks that docs/teleop.md holds the tables printed here.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported
import matplotlib.pyplot as plt
from matplotlib.patches import Circle, Ellipse, FancyBboxPatch, Polygon

from robot_brain.teleop.mapping import PARAMETERS, TeleopMapping

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "images" / "teleop_pad.png"

#: Where each control of SDL's standard layout sits on the drawing (pad centred on 0, 0; before SCALE).
POSITIONS: dict[str, tuple[float, float]] = {
    "left stick": (-2.5, 0.55),
    "right stick": (1.25, -1.0),
    "D-pad up": (-1.25, -0.62),
    "D-pad down": (-1.25, -1.38),
    "D-pad left": (-1.63, -1.0),
    "D-pad right": (-0.87, -1.0),
    "A": (2.5, 0.05),
    "B": (3.0, 0.55),
    "X": (2.0, 0.55),
    "Y": (2.5, 1.05),
    "back": (-0.65, 0.7),
    "guide": (0.0, 0.7),
    "start": (0.65, 0.7),
    "left shoulder": (-2.5, 2.05),
    "right shoulder": (2.5, 2.05),
    "left trigger": (-2.5, 2.55),
    "right trigger": (2.5, 2.55),
}
SCALE = 1.35
FACE_COLOURS = {"A": "#3a9d3a", "B": "#d62828", "X": "#2f6fd6", "Y": "#e0b020"}
#: Where a control's label goes: a side column (top to bottom, in the order of the controls'
#: heights so leader lines do not cross) or the strip above the pad (back, guide, start).
LEFT_LABELS = ("left trigger", "left shoulder", "left stick", "D-pad up", "D-pad left", "D-pad right", "D-pad down")
RIGHT_LABELS = ("right trigger", "right shoulder", "Y", "X", "B", "A", "right stick")
TOP_LABELS = ("back", "guide", "start")
WRAP = 44
#: Leader lines that would cross another control bend around it.
CURVED = {"X": "arc3,rad=-0.3"}


def physical(control: str) -> tuple[str, str]:
    """(physical control, which part): 'left stick y' -> ('left stick', 'up/down'), 'left stick click' -> 'click'."""
    for suffix, part in ((" x", "left/right"), (" y", "up/down"), (" click", "click")):
        if control.endswith(suffix) and "stick" in control:
            return control[: -len(suffix)], part
    return control, ""


def grouped(mapping: TeleopMapping) -> dict[str, list[str]]:
    """Actions per physical control (the reset combination is kept apart, under its ' + ' name)."""
    groups: dict[str, list[str]] = {}
    for control, action in mapping.controls():
        name, part = physical(control)
        groups.setdefault(name, []).append(f"{part}: {action}" if part else action)
    return groups


def markdown_table(mapping: TeleopMapping) -> str:
    rows = ["| control | what it does |", "| --- | --- |"]
    rows += [f"| {control} | {action} |" for control, action in mapping.controls()]
    return "\n".join(rows)


def parameters_table() -> str:
    """Every teleop parameter, its default and its description, as a markdown table."""
    rows = ["| parameter | default | meaning |", "| --- | --- | --- |"]
    for name, default, description in PARAMETERS:
        shown = json.dumps(default) if not isinstance(default, bool) else str(default).lower()
        rows.append(f"| `{name}` | `{shown}` | {description.replace('|', '/')} |")
    return "\n".join(rows)


def _at(name: str) -> tuple[float, float]:
    x, y = POSITIONS[name]
    return x * SCALE, y * SCALE


def _pad_body(axes: plt.Axes) -> None:
    grey, edge, k = "#e9e9ee", "#44444c", SCALE
    for x in (-2.6, 2.6):
        axes.add_patch(Ellipse((x * k, -1.2 * k), 2.6 * k, 3.4 * k, angle=-18 if x < 0 else 18, facecolor=grey,
                               edgecolor=edge, linewidth=2, zorder=1))
    axes.add_patch(FancyBboxPatch((-3.7 * k, -1.3 * k), 7.4 * k, 3.2 * k, boxstyle="round,pad=0.1,rounding_size=1.6",
                                  facecolor=grey, edgecolor=edge, linewidth=2, zorder=2))
    for x in (-1, 1):  # shoulders and triggers, seen over the top edge
        axes.add_patch(FancyBboxPatch(((x * 2.5 - 0.75) * k, 1.88 * k), 1.5 * k, 0.34 * k,
                                      boxstyle="round,pad=0.02,rounding_size=0.2", facecolor="#c9c9d2",
                                      edgecolor=edge, linewidth=1.5, zorder=3))
        axes.add_patch(FancyBboxPatch(((x * 2.5 - 0.55) * k, 2.35 * k), 1.1 * k, 0.42 * k,
                                      boxstyle="round,pad=0.02,rounding_size=0.25", facecolor="#b5b5c0",
                                      edgecolor=edge, linewidth=1.5, zorder=3))


def _controls(axes: plt.Axes, highlight: dict[str, str]) -> None:
    edge, k = "#44444c", SCALE
    for name in ("left stick", "right stick"):
        x, y = _at(name)
        axes.add_patch(Circle((x, y), 0.55 * k, facecolor="#d5d5dc", edgecolor=edge, linewidth=1.5, zorder=4))
        axes.add_patch(Circle((x, y), 0.36 * k, facecolor="#55555e", edgecolor=edge, zorder=5))
    cx, cy = -1.25 * k, -1.0 * k
    cross = [(-0.13, 0.5), (0.13, 0.5), (0.13, 0.13), (0.5, 0.13), (0.5, -0.13), (0.13, -0.13), (0.13, -0.5),
             (-0.13, -0.5), (-0.13, -0.13), (-0.5, -0.13), (-0.5, 0.13), (-0.13, 0.13)]
    axes.add_patch(Polygon([(cx + 1.05 * k * dx, cy + 1.05 * k * dy) for dx, dy in cross], closed=True,
                           facecolor="#55555e", edgecolor=edge, zorder=4))
    for name, colour in FACE_COLOURS.items():
        x, y = _at(name)
        axes.add_patch(Circle((x, y), 0.25 * k, facecolor=colour, edgecolor=edge, linewidth=1.5, zorder=4))
        axes.text(x, y, name, ha="center", va="center", color="white", fontsize=13, fontweight="bold", zorder=5)
    for name in ("back", "guide", "start"):
        x, y = _at(name)
        radius = (0.2 if name == "guide" else 0.13) * k
        axes.add_patch(Circle((x, y), radius, facecolor="#55555e", edgecolor=edge, zorder=4))
    for name, colour in highlight.items():  # rings around the controls that matter most
        x, y = _at(name)
        if "shoulder" in name:
            axes.add_patch(FancyBboxPatch((x - 0.85 * k, y - 0.27 * k), 1.7 * k, 0.54 * k,
                                          boxstyle="round,pad=0.02,rounding_size=0.25", facecolor="none",
                                          edgecolor=colour, linewidth=3.5, zorder=6))
            continue
        radius = (0.62 if "stick" in name else 0.36 if name in FACE_COLOURS else 0.3) * k
        axes.add_patch(Circle((x, y), radius, facecolor="none", edgecolor=colour, linewidth=3.5, zorder=6))


def _label_text(name: str, actions: list[str], width: int = WRAP) -> str:
    lines = [name.upper()]
    for action in actions:
        lines += textwrap.wrap(action, width, subsequent_indent="    ")
    return "\n".join(lines)


def _column(axes: plt.Axes, groups: dict[str, list[str]], names: Iterable[str], side: int,
            colours: dict[str, str], top: float, bottom: float) -> None:
    """Labels stacked down one side, spaced by their number of lines, each with a leader line to its control."""
    texts = [(name, _label_text(name, groups[name])) for name in names if name in groups]
    if not texts:
        return
    heights = [text.count("\n") + 1 for _, text in texts]
    gap = (top - bottom) / (sum(heights) + len(texts) - 1)  # one blank line between boxes
    y = top
    for (name, text), height in zip(texts, heights, strict=True):
        centre = y - gap * height / 2
        _label(axes, name, text, (side * 6.4, centre), "left" if side > 0 else "right", colours)
        y -= gap * (height + 1)


def _label(axes: plt.Axes, name: str, text: str, where: tuple[float, float], align: str,
           colours: dict[str, str]) -> None:
    colour = colours.get(name, "#30303a")
    axes.annotate(
        text, xy=_at(name), xytext=where, ha=align, va="center", fontsize=12, color=colour, linespacing=1.3,
        fontweight="bold" if name in colours else "normal",
        arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 1.3, "shrinkA": 2, "shrinkB": 6,
                    "connectionstyle": CURVED.get(name, "arc3,rad=0")},
        bbox={"boxstyle": "round,pad=0.35", "facecolor": "white", "edgecolor": colour, "linewidth": 1.2},
        zorder=7,
    )


def draw(mapping: TeleopMapping, path: Path) -> None:
    groups = grouped(mapping)
    combination = next((name for name in groups if " + " in name), None)
    colours = {"B": "#d62828"} if mapping.estop_button == 1 else {}
    if mapping.require_enable_button and mapping.enable_button == 9:
        colours["left shoulder"] = "#d97706"
    figure, axes = plt.subplots(figsize=(18, 11.5), dpi=100)
    axes.set_xlim(-15.0, 15.0)
    axes.set_ylim(-8.2, 8.6)
    axes.set_aspect("equal")
    axes.axis("off")
    _pad_body(axes)
    _controls(axes, colours)
    _column(axes, groups, LEFT_LABELS, -1, colours, top=5.3, bottom=-6.2)
    _column(axes, groups, RIGHT_LABELS, +1, colours, top=5.3, bottom=-6.2)
    for name in TOP_LABELS:  # above the pad, between the side columns: back to the left, start to the right
        if name in groups:
            x = POSITIONS[name][0] * SCALE
            align = "right" if x < -0.1 else "left" if x > 0.1 else "center"
            _label(axes, name, _label_text(name, groups[name], 34), (x, 7.4), align, colours)
    axes.set_title("robot_brain teleop: the default button map\n(SDL game controller layout, Xbox names)",
                   fontsize=17, fontweight="bold")
    notes = []
    if combination:
        notes.append(f"{combination.upper()} held together: {groups[combination][0]}")
    notes.append("No motion unless the dead-man is held; releasing it stops at once.")
    notes.append("After an unplug, an e-stop or a reset: release the dead-man, then press it again.")
    axes.text(0.0, -7.9, "\n".join(notes), ha="center", va="bottom", fontsize=13, color="#30303a",
              linespacing=1.4)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight", facecolor="white")
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the button-map table instead of drawing")
    parser.add_argument("--parameters", action="store_true", help="print the parameter table instead of drawing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"PNG to write (default: {OUTPUT})")
    args = parser.parse_args(argv)
    mapping = TeleopMapping.default()
    if args.markdown:
        print(markdown_table(mapping))
    elif args.parameters:
        print(parameters_table())
    else:
        draw(mapping, args.output)
        print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
