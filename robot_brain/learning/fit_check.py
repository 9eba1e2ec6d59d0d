"""Does an exported policy reproduce its demonstrations? A behavioural check of the ONNX file, torch-free.

The model is run the way the policy node runs it (:func:`robot_brain.inference.model.load_model`,
:class:`robot_brain.inference.runtime.InferenceRuntime` on CPU, inputs normalised with
``apply_normalization`` and the output decoded with ``decode_chunk`` from the contract) on the
observations of its own training datasets, and its action chunk is compared with the
demonstrated one. The frames are read straight from the datasets' ``data/*/*.parquet`` with
pyarrow, not through the LeRobot reader or the training arrays, and the demonstrated chunk is
built here from its definition (``ee_pose_delta`` waypoint ``i`` of frame ``t``: the commanded
tool position ``action.ee_pose[min(t + i·stride, T−1)]`` minus the observed one
``observation.ee_pose[t]``), so a bug in the training's data path does not also hide in the check.

**Metric**: the mean Euclidean distance between predicted and demonstrated waypoint *positions*
(millimetres, over every waypoint of every frame; the definition of training's
``validation_position_error_mm``). Rotations are left out: the scripted demonstrations hold the
tool's orientation, so they carry almost no signal. **Baselines**, on the same frames: ``zero``
(predict "stay": every waypoint at the current tool position) and ``mean`` (each waypoint's mean
demonstrated offset over the *training* frames: the constant chunk a model that ignores its inputs
would learn, and what a model with zeroed weights outputs). ``ratio`` is the model's error over the
better baseline's. The episodes are grouped by the ``split`` the model's provenance gives them
(``train``, ``validation``; ``all`` for a model without provenance). The check passes when
``ratio <= max_ratio`` on the frames the model was trained on: does the exported file reproduce
its own data? The held-out ratio is reported beside it, not gated: with few demonstrations the
held-out split is one short segment (measured over four training seeds on one factory smoke
run: 0.4 to 2.0, depending on whether the segment is a reach or its still tail), while the
training ratio stays in 0.2–0.35 after 150 steps and a broken model's is at or above 1.

A model whose weights are shuffled or zeroed, or one never trained, has a ratio near or above 1
(its output hardly depends on its inputs: at best the mean chunk); a sign error in its features
more than 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow.parquet as pq

from robot_brain.errors import UserError
from robot_brain.inference.contract import ModelContract
from robot_brain.inference.model import LoadedModel, load_model
from robot_brain.inference.observation import apply_normalization, decode_chunk
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions

DEFAULT_MAX_RATIO = 0.5
"""A model must at least halve the better baseline's error on its training frames (measured on the factory
smoke test, 150 steps on 4 demonstrations: 0.22–0.35; shuffled or zeroed weights 1.06–1.08; the relative
target's sign flipped 1.5)."""
GATED_SPLITS = ("train", "all")
"""The splits the verdict is on (``validation`` is reported, not gated: see the module docstring)."""
PROVENANCE_KEY = "robot_brain.provenance"
FEATURES = {"target_point": "observation.target_point", "ee_pose": "observation.ee_pose"}
OBSERVED = "observation.ee_pose"
COMMANDED = "action.ee_pose"


class FitCheckError(UserError):
    """The check cannot be made: not an ``ee_pose_delta`` policy, datasets that do not match its provenance."""


@dataclass(frozen=True)
class SplitFit:
    """Model and baseline errors on one split's frames."""

    frames: int
    model_mm: float
    zero_mm: float
    mean_mm: float

    @property
    def baseline(self) -> str:
        return "zero" if self.zero_mm <= self.mean_mm else "mean"

    @property
    def baseline_mm(self) -> float:
        return min(self.zero_mm, self.mean_mm)

    @property
    def ratio(self) -> float:
        return self.model_mm / self.baseline_mm if self.baseline_mm > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "model_mm": round(self.model_mm, 3), "zero_mm": round(self.zero_mm, 3),
                "mean_mm": round(self.mean_mm, 3), "baseline": self.baseline, "baseline_mm": round(self.baseline_mm, 3),
                "ratio": round(self.ratio, 4)}


@dataclass(frozen=True)
class FitReport:
    """Per split (``train``, ``validation``; ``all`` without provenance) the errors, and the verdict."""

    splits: dict[str, SplitFit]
    max_ratio: float
    horizon: int
    stride: int
    notes: list[str] = field(default_factory=list)

    @property
    def gated(self) -> dict[str, SplitFit]:
        return {name: s for name, s in self.splits.items() if name in GATED_SPLITS}

    @property
    def ok(self) -> bool:
        return bool(self.gated) and all(s.ratio <= self.max_ratio for s in self.gated.values())

    def message(self) -> str:
        parts = [f"{name} {s.model_mm:.1f} mm vs {s.baseline} baseline {s.baseline_mm:.1f} mm "
                 f"(ratio {s.ratio:.2f}, {s.frames} frames)" for name, s in self.splits.items()]
        verdict = "fits" if self.ok else "does NOT fit"
        limit = f" (ratio at most {self.max_ratio:g} on {' and '.join(self.gated) or 'training frames'})"
        return f"model {verdict} its demonstrations{limit}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_ratio": self.max_ratio, "gated": list(self.gated),
                "metric": "mean waypoint position error, mm",
                "horizon": self.horizon, "stride": self.stride,
                "splits": {name: s.to_dict() for name, s in self.splits.items()}, "notes": list(self.notes)}


@dataclass(frozen=True)
class _Episode:
    dataset: int
    index: int
    columns: dict[str, np.ndarray]  # feature → (T, D) float64, in frame order


def read_episodes(root: Path, position: int = 0) -> list[_Episode]:
    """Every episode of the dataset at ``root``, read from its data parquet files with pyarrow alone."""
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise FitCheckError(f"{root}: expected data/*/*.parquet, found none")
    wanted = [*dict.fromkeys([*FEATURES.values(), OBSERVED, COMMANDED]), "episode_index", "frame_index"]
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for part in (pq.read_table(path, columns=wanted) for path in files):
        for name in wanted:
            column = part.column(name).combine_chunks()
            if name in ("episode_index", "frame_index"):
                arrays[name].append(column.to_numpy())
            else:
                width = column.type.list_size
                arrays[name].append(column.flatten().to_numpy().astype(np.float64).reshape(-1, width))
    merged = {name: np.concatenate(values) for name, values in arrays.items()}
    order = np.lexsort((merged["frame_index"], merged["episode_index"]))
    episodes_column = merged["episode_index"][order]
    result = []
    for episode in np.unique(episodes_column):
        rows = order[episodes_column == episode]
        result.append(_Episode(position, int(episode), {name: merged[name][rows] for name in wanted[:-2]}))
    return result


def demonstrated_offsets(observed: np.ndarray, commanded: np.ndarray, horizon: int, stride: int) -> np.ndarray:
    """``(T, H, 3)`` positions: waypoint ``i`` of frame ``t`` is ``commanded[min(t + i·stride, T−1)] − observed[t]``."""
    length = len(observed)
    later = np.minimum(np.arange(length)[:, None] + stride * np.arange(horizon)[None, :], length - 1)
    return commanded[later, :3] - observed[:, None, :3]


def _splits(
    model: onnx.ModelProto, datasets: Sequence[Path], notes: list[str]
) -> tuple[dict[tuple[int, int], str], int | None]:
    """(dataset position, episode index) → split from the model's provenance, and its label stride."""
    metadata = {p.key: p.value for p in model.metadata_props}
    if PROVENANCE_KEY not in metadata:
        notes.append("no training provenance: every frame of the datasets counted as 'all'")
        return {}, None
    document = json.loads(metadata[PROVENANCE_KEY])
    names = [d.get("name") for d in document.get("datasets") or []]
    if names and names != [Path(d).name for d in datasets]:
        raise FitCheckError(f"fit check: expected the model's training datasets {names} in that order, "
                            f"found {[Path(d).name for d in datasets]}")
    splits = {(int(e["dataset"]), int(e["episode_index"])): str(e.get("split", "train"))
              for e in document.get("episodes") or []}
    stride = (document.get("training") or {}).get("stride")
    return splits, int(stride) if isinstance(stride, int) else None


def _runtime(model: LoadedModel) -> tuple[InferenceRuntime, ModelContract]:
    contract = model.require_contract()
    action = contract.action_output
    if action.action_space != "ee_pose_delta":
        raise FitCheckError(f"fit check: expected an ee_pose_delta policy, found action space {action.action_space!r}")
    unsupported = [s.name for s in contract.inputs if s.role not in (*FEATURES, "image")]
    if unsupported:
        raise FitCheckError(f"fit check: expected inputs with roles {', '.join([*FEATURES, 'image'])}, "
                            f"found {unsupported}")
    options = RuntimeOptions(providers="cpu", warmup_runs=0, intra_op_threads=1)
    return InferenceRuntime(model, options), contract


def _images(root: Path, episode: int, contract: ModelContract) -> dict[str, np.ndarray]:
    """Each image input's frames of one episode, decoded from the dataset's video and preprocessed as the node does."""
    from robot_brain.datasets.lerobot_format import CAMERA_PREFIX
    from robot_brain.datasets.lerobot_reader import LeRobotDataset
    from robot_brain.perception.preprocess import Preprocessor

    dataset = LeRobotDataset(root)
    key = dataset.video_keys[0] if len(dataset.video_keys) == 1 else CAMERA_PREFIX + "camera"
    frames = {}
    for spec in contract.inputs:
        if spec.role == "image":
            assert spec.image is not None
            preprocessor = Preprocessor(spec.image)
            frames[spec.name] = np.stack([preprocessor(f, "rgb8").copy() for _, f in
                                          dataset.iter_video_frames(episode, key)])
    return frames


def check_fit(
    model_path: str | Path | bytes, datasets: Sequence[str | Path], *, max_ratio: float = DEFAULT_MAX_RATIO
) -> FitReport:
    """Run the model on its datasets' frames and compare with the demonstrations (see the module docstring).

    Every frame is run once, one at a time as the node runs it (a state policy: ~20 µs a frame, 0.1 s
    for the factory's smoke test; a visuomotor one also decodes every episode's video).

    ``datasets``: the training datasets, in the order training was given them (the provenance's
    ``dataset`` positions). Raises :class:`FitCheckError` when the check does not apply.
    """
    data = Path(model_path).read_bytes() if not isinstance(model_path, bytes) else model_path
    loaded = load_model(data)
    runtime, contract = _runtime(loaded)
    action = contract.action_output
    stats = contract.normalization.get(action.name)
    notes: list[str] = []
    splits, stride = _splits(onnx.load_from_string(data), [Path(d) for d in datasets], notes)
    roots = [Path(d) for d in datasets]
    if stride is None:
        fps = json.loads((roots[0] / "meta" / "info.json").read_text(encoding="utf-8"))["fps"]
        stride = max(1, round(float(action.dt) * float(fps)))
    horizon = int(action.horizon)
    predicted: dict[str, list[np.ndarray]] = {}
    demonstrated: dict[str, list[np.ndarray]] = {}
    for position, root in enumerate(roots):
        for episode in read_episodes(root, position):
            if splits and (position, episode.index) not in splits:
                continue  # excluded from training (consent, duplicate): not the model's data
            split = splits[(position, episode.index)] if splits else "all"
            columns = episode.columns
            images = _images(root, episode.index, contract) if any(s.role == "image" for s in contract.inputs) else {}
            offsets = demonstrated_offsets(columns[OBSERVED], columns[COMMANDED], horizon, stride)
            chunks = np.empty_like(offsets)
            for t in range(len(offsets)):
                feeds = {}
                for spec in contract.inputs:
                    if spec.role == "image":
                        feeds[spec.name] = images[spec.name][t]
                    else:
                        value = columns[FEATURES[spec.role]][t : t + 1].astype(np.float32)
                        feeds[spec.name] = apply_normalization(value, contract.normalization.get(spec.name))
                raw = runtime.run(feeds)[action.name]
                chunks[t] = decode_chunk(raw, action, stats)[:, :3]
            predicted.setdefault(split, []).append(chunks)
            demonstrated.setdefault(split, []).append(offsets)
    if not demonstrated:
        raise FitCheckError("fit check: none of the model's training episodes is in the datasets given")
    order = [s for s in ("train", "validation", "all") if s in demonstrated]
    order += sorted(set(demonstrated) - set(order))
    # The constant a model that ignores its inputs would learn: the training frames' mean chunk.
    constant = np.concatenate(demonstrated[order[0]]).mean(axis=0, keepdims=True)
    report: dict[str, SplitFit] = {}
    for split in order:
        truth, guess = np.concatenate(demonstrated[split]), np.concatenate(predicted[split])
        report[split] = SplitFit(
            frames=len(truth),
            model_mm=_mean_distance_mm(guess, truth),
            zero_mm=_mean_distance_mm(np.zeros_like(truth), truth),
            mean_mm=_mean_distance_mm(np.broadcast_to(constant, truth.shape), truth),
        )
    return FitReport(report, float(max_ratio), horizon, stride, notes)


def _mean_distance_mm(guess: np.ndarray, truth: np.ndarray) -> float:
    return float(1000.0 * np.linalg.norm(guess - truth, axis=-1).mean())
