"""The data factory in one run: collect → export → train → evaluate → report.

1. **Collect**: for each training arm, scripted demonstrations through the teleop path, recorded
   by the recorder into a fresh data root (:func:`robot_brain.factory.collection.collect`).
2. **Export**: each arm's successful demonstrations into its own LeRobot v3 dataset inside the
   data root (one robot per dataset: feature shapes are per arm).
3. **Train**: one policy on all the datasets together (``robot_brain.learning.training.train``):
   the ``state`` policy sees only the target relative to the tool, so it can drive arms it
   never saw. Then the exported ONNX file is run on its own demonstrations
   (:func:`robot_brain.learning.fit_check.check_fit`): its waypoint error against the better
   of two trivial baselines (stay put, the mean chunk), per split, in ``report["fit"]``.
4. **Evaluate**: ``robot-brain demo --model`` on every training and evaluation arm, seeded
   episodes from a seed range no demonstration used (held-out object placements).
5. **Report**: ``report.json``, ``report.md`` (table and provenance), ``success.png`` (per arm,
   training vs zero-shot arms), beside the training's ``loss_curve.png``.

Every step writes into ``out``; nothing outside it is touched (the data root is ``out/data``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_brain.errors import ConfigurationError

#: Evaluation seeds start here: collection uses seeds from 0, so placements are held out.
EVAL_SEED = 1000
DEFAULT_TRAIN_ROBOTS = ("ur5", "panda", "xarm7")
DEFAULT_EVAL_ROBOTS = ("iiwa", "xarm6")


@dataclass(frozen=True)
class FactoryConfig:
    """What one factory run does (``robot-brain factory``'s options)."""

    out: Path
    train_robots: tuple[str, ...] = DEFAULT_TRAIN_ROBOTS
    eval_robots: tuple[str, ...] = DEFAULT_EVAL_ROBOTS
    demos: int = 50
    policy: str = "state"
    steps: int = 2000
    eval_episodes: int = 20
    seed: int = 0
    codec: str = "h264"
    params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.train_robots:
            raise ConfigurationError("--train-robots: expected at least one robot")
        if self.demos < 1 or self.eval_episodes < 0 or self.steps < 1:
            raise ConfigurationError("--demos and --steps must be >= 1, --eval-episodes >= 0")
        overlap = set(self.train_robots) & set(self.eval_robots)
        if overlap:
            raise ConfigurationError(f"--eval-robots must be arms the model never saw; also in training: "
                                     f"{', '.join(sorted(overlap))}")


@dataclass
class FactoryReport:
    """What a factory run produced (``--json`` prints :meth:`as_dict`)."""

    config: FactoryConfig
    collected: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def success(self, robots: Sequence[str]) -> dict[str, float]:
        return {robot: self.evaluation[robot]["success_rate"] for robot in robots if robot in self.evaluation}

    def as_dict(self) -> dict[str, Any]:
        config = self.config
        return {
            "train_success": self.success(config.train_robots),
            "eval_success": self.success(config.eval_robots),
            "episodes": sum(c["episodes"] for c in self.collected.values()),
            "successful_demonstrations": sum(c["successes"] for c in self.collected.values()),
            "frames": _total(self.training.get("frames")),
            "train_seconds": self.training.get("train_seconds"),
            "model": self.training.get("model"),
            "model_sha256": self.training.get("sha256"),
            "policy": config.policy,
            "steps": config.steps,
            "demos_per_arm": config.demos,
            "eval_episodes_per_arm": config.eval_episodes,
            "datasets": self.datasets,
            "collected": {robot: {k: v for k, v in c.items() if k != "demonstrations"}
                          for robot, c in self.collected.items()},
            "evaluation": self.evaluation,
            "provenance_ok": self.provenance.get("ok"),
            "fit": self.fit,
            "seconds": self.seconds,
            "out": str(config.out),
        }


def run_factory(config: FactoryConfig, say: Callable[[str], None] = print) -> FactoryReport:
    """Run the whole loop; see the module docstring. Raises a UserError for anything the user can fix."""
    from robot_brain.datasets.export import export_episodes
    from robot_brain.factory.collection import collect
    from robot_brain.learning.fit_check import check_fit
    from robot_brain.learning.model_provenance import check_model_provenance, read_model_provenance
    from robot_brain.learning.training import train
    from robot_brain.learning.training_config import TrainConfig

    out = config.out
    data_root = out / "data"
    report = FactoryReport(config)
    clock = time.monotonic()
    for offset, robot in enumerate(config.train_robots):
        say(f"factory: collecting {config.demos} demonstrations on {robot}")
        report.collected[robot] = collect(robot, None, config.demos, data_root, seed=config.seed + offset * 10_000,
                                          params=list(config.params), say=say)
    report.seconds["collect"] = round(time.monotonic() - clock, 1)

    clock = time.monotonic()
    datasets = []
    for robot, collected in report.collected.items():
        ids = collected["successful_episode_ids"]
        if not ids:
            raise ConfigurationError(f"factory: no successful demonstration on {robot}; nothing to export")
        target = data_root / "datasets" / robot
        say(f"factory: exporting {len(ids)} demonstrations of {robot} to {target}")
        export_episodes(data_root, ids, target, codec=config.codec)
        report.datasets[robot] = str(target)
        datasets.append(target)
    report.seconds["export"] = round(time.monotonic() - clock, 1)

    clock = time.monotonic()
    model = out / f"{config.policy}_policy.onnx"
    say(f"factory: training a {config.policy} policy on {len(datasets)} dataset(s), {config.steps} steps")
    result = train(datasets, model, TrainConfig(policy=config.policy, steps=config.steps, seed=config.seed),
                   data_root=data_root, log=say)
    assert result is not None  # one process: rank 0
    report.training = result.summary()
    report.seconds["train"] = round(time.monotonic() - clock, 1)
    report.provenance = check_model_provenance(read_model_provenance(model), data_root).to_dict()
    fit = check_fit(model, datasets)
    report.fit = fit.to_dict()
    say(f"factory: {fit.message()}")

    clock = time.monotonic()
    if config.eval_episodes:
        for robot in (*config.train_robots, *config.eval_robots):
            say(f"factory: evaluating on {robot} ({'training' if robot in config.train_robots else 'zero-shot'} "
                f"arm), {config.eval_episodes} episodes")
            # The policy node checks the model's provenance against the registry it was trained with.
            report.evaluation[robot] = evaluate(model, robot, config.eval_episodes, out / "eval" / robot,
                                                [f"policy.consent_data_root={data_root}", *config.params])
    report.seconds["evaluate"] = round(time.monotonic() - clock, 1)
    write_report(report)
    return report


def evaluate(model: Path, robot: str, episodes: int, output: Path, params: list[str]) -> dict[str, Any]:
    """``robot-brain demo --model`` in its own process (its own nodes and DDS domain); its JSON summary."""
    command = [sys.executable, "-m", "robot_brain.cli.main", "demo", "--robot", robot, "--model", str(model),
               "--episodes", str(episodes), "--seed", str(EVAL_SEED), "--json", "--output", str(output)]
    for param in params:
        command += ["--param", param]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120 + 60 * episodes)
    if result.returncode not in (0, 1):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigurationError(f"factory: evaluation on {robot} failed: {tail[0]}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {key: summary[key] for key in ("success_rate", "episodes", "time_to_success_mean_s", "outputs")
            if key in summary}


def write_report(report: FactoryReport) -> dict[str, Path]:
    """``report.json``, ``report.md`` and ``success.png`` in the output folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = report.config.out
    data = report.as_dict()
    files = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / "success.png"}
    files["json"].write_text(json.dumps(data, indent=1), encoding="utf-8")
    rows = [(robot, "training", rate) for robot, rate in data["train_success"].items()]
    rows += [(robot, "zero-shot", rate) for robot, rate in data["eval_success"].items()]
    lines = [
        "# Data factory report", "",
        f"Policy `{data['policy']}` trained {data['steps']} steps on {data['successful_demonstrations']} successful "
        f"scripted demonstrations ({data['demos_per_arm']} per arm on {', '.join(report.config.train_robots)}), "
        f"{data['frames']} frames; evaluated with `robot-brain demo` on held-out placements (seeds from "
        f"{EVAL_SEED}), {data['eval_episodes_per_arm']} episodes per arm.", "",
        "| arm | kind | success |", "| --- | --- | ---: |",
        *(f"| {robot} | {kind} | {rate * 100:.0f} % |" for robot, kind, rate in rows), "",
        f"Model: `{data['model']}` (sha256 {str(data['model_sha256'])[:16]}…); provenance checked against the "
        f"consent registry: {'clear' if data['provenance_ok'] else 'FLAGGED'} (`robot-brain provenance MODEL "
        f"--data-root {out / 'data'}`).", "",
        _fit_line(data["fit"]), "",
        f"Time: {', '.join(f'{k} {v:.0f} s' for k, v in data['seconds'].items())}.",
    ]
    files["markdown"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    figure, axes = plt.subplots(figsize=(6, 3.2))
    colours = ["#4c72b0" if kind == "training" else "#dd8452" for _, kind, _ in rows]
    axes.bar([robot for robot, _, _ in rows], [rate * 100 for _, _, rate in rows], color=colours)
    axes.set_ylim(0, 100)
    axes.set_ylabel("success, %")
    axes.set_title(f"{data['policy']} policy: training arms (blue) and unseen arms (orange)")
    figure.tight_layout()
    figure.savefig(files["plot"], dpi=120)
    plt.close(figure)
    return files


def _fit_line(fit: dict[str, Any]) -> str:
    """The fit check in one sentence of the report."""
    if not fit:
        return "Fit check: not made."
    splits = "; ".join(f"{name}: {s['model_mm']:.1f} mm vs {s['baseline_mm']:.1f} mm ({s['baseline']}), ratio "
                       f"{s['ratio']:.2f} over {s['frames']} frames" for name, s in fit["splits"].items())
    verdict = "passed" if fit["ok"] else "FAILED"
    return (f"Fit check (the ONNX model on its demonstrations: mean waypoint position error against the better "
            f"trivial baseline, at most {fit['max_ratio']:.2f} of it on {' and '.join(fit['gated'])} frames; "
            f"held-out frames reported only): {verdict}; {splits}.")


def _total(frames: Any) -> int | None:
    """Training reports frames per split ({"train": n, "validation": m}); the factory reports their sum."""
    if isinstance(frames, dict):
        return int(sum(frames.values()))
    return None if frames is None else int(frames)
