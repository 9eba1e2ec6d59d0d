"""Robot self-filter cost per 640x480 frame (target ≤ 2 ms median on a 7-DOF arm), beside the detector alone.

    .venv/bin/python bench/self_filter.py [--robots panda ur5 ...] [--iterations N] [--json]

For each arm, the sim renders frames of its own task camera with the arm painted the
object's red and posed around home (the object placed from seeds), joint states are fed
at 250 Hz around each frame's stamp, and on the same frames it times:

- ``self-filter``: ``SelfFilter.mask_at`` (time matching + FK + projection + fill + margin);
- ``detector``: the colour detector alone (the same-run baseline: what perception cost before);
- ``detector + mask + size``: the detector with the self-mask and the apparent-size check.

It also counts the frames where each finds the object within half the task tolerance
(the bar ``test/sim/test_rendering.py`` sets), beside the frames where at least half of the
object is in view at all (MuJoCo's segmentation): with a red arm the plain detector finds
the arm. Numbers from a shared VM are orders of magnitude: re-measure on yours.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import cv2
import mujoco
import numpy as np

from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.perception.detector import ApparentSize, ColorTargetDetector
from robot_brain.perception.geometry import CameraModel, point_on_plane
from robot_brain.perception.self_filter import SelfFilter, SelfFilterOptions
from robot_brain.sim import SceneOptions, build_simulation
from robot_brain.sim.rendering import OffscreenRenderer, camera_matrix
from robot_brain.sim.scene import GROUP_HIDDEN, GROUP_ROBOT_COLLISION_SHOWN, GROUP_ROBOT_VISUAL

ROBOTS = ("panda", "ur5", "xarm7", "iiwa", "so101")
WIDTH, HEIGHT = 640, 480
RED = (0.9, 0.1, 0.1, 1.0)
NS = 1_000_000_000


def timed(call: Callable[[int], object], iterations: int) -> dict[str, float]:
    samples = np.empty(iterations)
    for i in range(iterations):
        started = time.perf_counter()
        call(i)
        samples[i] = time.perf_counter() - started
    samples *= 1e3
    return {"median_ms": round(float(np.median(samples)), 3), "p99_ms": round(float(np.percentile(samples, 99)), 3)}


def measure(name: str, frames: int, iterations: int) -> dict[str, object]:
    arm = load_arm(bundled_arm_path(name))
    simulation = build_simulation(arm, scene_options=SceneOptions(arm_rgba=RED, camera_width=WIDTH,
                                                                  camera_height=HEIGHT))
    scene, layout, simulator = simulation.scene, simulation.layout, simulation.simulator
    started = time.perf_counter()
    # "both": the sim draws collision meshes where it cannot decode a COLLADA visual (Panda, UR5).
    self_filter = SelfFilter(arm, SelfFilterOptions(geometry="both"))
    load_s = time.perf_counter() - started
    camera = CameraModel.from_values(WIDTH, HEIGHT, camera_matrix(scene.model, scene.task_camera, WIDTH, HEIGHT)
                                     .reshape(9).tolist())
    plane = [0.0, 0.0, 1.0, layout.object_z]
    plain = ColorTargetDetector([0, 120, 70], [10, 255, 255])
    checked = ColorTargetDetector([0, 120, 70], [10, 255, 255],
                                  size_check=ApparentSize(layout.object_size, layout.camera_pose, plane))
    rng = np.random.default_rng(0)
    data = mujoco.MjData(scene.model)
    images, stamps, targets, visible = [], [], [], 0
    names = scene.state_joints
    segmenter = mujoco.Renderer(scene.model, HEIGHT, WIDTH)
    segmenter.enable_segmentation_rendering()
    object_geom = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_GEOM, "task_object_geom")

    def object_pixels(hide_robot: bool) -> int:
        option = mujoco.MjvOption()
        option.geomgroup[GROUP_HIDDEN] = 0
        if hide_robot:
            option.geomgroup[GROUP_ROBOT_VISUAL] = option.geomgroup[GROUP_ROBOT_COLLISION_SHOWN] = 0
        segmenter.update_scene(data, camera=scene.task_camera, scene_option=option)
        segmentation = segmenter.render()
        return int(np.count_nonzero((segmentation[..., 0] == object_geom)
                                    & (segmentation[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM))))

    with OffscreenRenderer(scene.model, WIDTH, HEIGHT) as renderer:
        for frame in range(frames):
            targets.append(simulator.reset(frame).target)
            simulator.copy_kinematics(data)
            home = data.qpos[scene.state_qpos].copy()
            pose = home.copy()
            dof = arm.spec.dof
            pose[:dof] = np.clip(layout.home + rng.uniform(-0.4, 0.4, dof), arm.spec.lower, arm.spec.upper)
            stamp = (frame + 1) * NS
            for offset_ms in range(-40, 44, 4):  # joint states at 250 Hz around the frame
                self_filter.add_joint_state(stamp + offset_ms * 1_000_000, names, pose)
            data.qpos[scene.state_qpos] = pose
            mujoco.mj_kinematics(scene.model, data)
            images.append(renderer.render(data, scene.task_camera))
            stamps.append(stamp + 1_000_000)  # between two joint samples
            visible += object_pixels(False) >= 0.5 * object_pixels(True)
    segmenter.close()
    masks = [self_filter.mask_at(stamp, camera, layout.camera_pose).mask.copy() for stamp in stamps]

    def found(detector: ColorTargetDetector, index: int, mask: np.ndarray | None) -> bool:
        detection = detector.detect(images[index], "rgb8", ignore=mask, camera=camera)
        if detection is None:
            return False
        point = point_on_plane(camera, detection.u, detection.v, layout.camera_pose, plane)
        return point is not None and float(np.linalg.norm(point - targets[index])) < 0.5 * layout.tolerance

    def self_filter_call(i: int) -> object:
        return self_filter.mask_at(stamps[i % frames], camera, layout.camera_pose)

    def plain_call(i: int) -> object:
        return plain.detect(images[i % frames], "rgb8")

    def checked_call(i: int) -> object:
        return checked.detect(images[i % frames], "rgb8", ignore=masks[i % frames], camera=camera)

    for call in (self_filter_call, plain_call, checked_call):  # warm-up
        call(0)
    return {
        "robot": name,
        "dof": arm.spec.dof,
        "joints": len(self_filter.joint_names),
        "pieces": self_filter.piece_count,
        "vertices": self_filter.vertex_count,
        "load_s": round(load_s, 2),
        "self_filter": timed(self_filter_call, iterations),
        "detector": timed(plain_call, iterations),
        "detector_mask_size": timed(checked_call, iterations),
        "found_plain": sum(found(plain, i, None) for i in range(frames)),
        "found_filtered": sum(found(checked, i, masks[i]) for i in range(frames)),
        "object_in_view": visible,
        "frames": frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", default=list(ROBOTS))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    rows = [measure(name, args.frames, args.iterations) for name in args.robots]
    if not args.json:
        print(f"{'robot (640x480, red arm)':<26} {'joints':>6} {'pieces':>6} {'load s':>6} "
              f"{'self-filter ms':>15} {'detector ms':>13} {'det+mask+size ms':>17} {'found plain':>11} "
              f"{'found filtered':>14} {'in view':>8}")
        for row in rows:
            cells = [f"{row[key]['median_ms']:.3f}/{row[key]['p99_ms']:.3f}"  # type: ignore[index]
                     for key in ("self_filter", "detector", "detector_mask_size")]
            print(f"{row['robot']:<26} {row['joints']:>6} {row['pieces']:>6} {row['load_s']:>6} {cells[0]:>15} "
                  f"{cells[1]:>13} {cells[2]:>17} {row['found_plain']:>6}/{row['frames']:<4} "
                  f"{row['found_filtered']:>9}/{row['frames']:<4} {row['object_in_view']:>5}/{row['frames']:<4}")
        print("(median/p99 per frame)")
    seven_dof = [row for row in rows if row["dof"] >= 7]
    target = all(row["self_filter"]["median_ms"] <= 2.0 for row in seven_dof) if seven_dof else None  # type: ignore[index]
    print(json.dumps({"bench": "self_filter", "resolution": [WIDTH, HEIGHT], "opencv_threads": cv2.getNumThreads(),
                      "target_2ms_met": target, "robots": rows}))


if __name__ == "__main__":
    main()
