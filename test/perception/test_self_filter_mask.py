"""The self-filter's mask against MuJoCo's own segmentation of the sim's camera, on real arms.

Margin off, the mask must cover the pixels MuJoCo draws the robot on with an intersection
over union of at least 0.9, at the sim's home pose and at poses around it (gripper and
mimic joints moved too), on arms with COLLADA, OBJ and STL meshes, the bundled ones and the
sweep's arms from other description packages.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from self_filter_cells import HEIGHT, WIDTH, Segmenter, arm, cell, iou, self_filter

from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import DEVELOPMENT_ARMS
from robot_brain.errors import ConfigurationError, DescriptionError
from robot_brain.perception.geometry import CameraModel, matrix_to_pose
from robot_brain.perception.robot_geometry import read_stl, support_points
from robot_brain.perception.self_filter import SelfFilter, SelfFilterOptions, clip_polygon
from robot_brain.sim.workspace import LayoutOptions, look_at

POSES = 4


def poses(name: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """The home pose, then ``count - 1`` poses around it (arm joints ±0.4 rad, gripper anywhere in its range)."""
    filt = self_filter(name)
    spec = arm(name).spec
    layout = cell(name).sim.layout
    rng = np.random.default_rng(seed)
    result = []
    for index in range(count):
        q = np.zeros(len(filt.joint_names))
        q[: spec.dof] = layout.home
        if index:
            q[: spec.dof] = np.clip(layout.home + rng.uniform(-0.4, 0.4, spec.dof), spec.lower, spec.upper)
        for j, joint in enumerate(filt.joint_names[spec.dof :], start=spec.dof):
            info = arm(name).tree.joints[joint]
            if info.lower is not None and info.upper is not None and index:
                q[j] = rng.uniform(info.lower, info.upper)
        result.append(q)
    return result


#: The bundled arms at four poses each, and the sweep's development arms (other description
#: packages: ABB, KUKA, PUMA, Trossen, FR3, Talos) at two; the held-out arms are benchmark-only.
MASK_CASES = [*((name, POSES) for name in ("panda", "ur5", "xarm7", "iiwa", "so101", "xarm6_gripper")),
              *((name, 2) for name in DEVELOPMENT_ARMS)]


@pytest.mark.parametrize(("name", "pose_count"), MASK_CASES)
def test_mask_matches_mujoco_segmentation(name: str, pose_count: int) -> None:
    sim_cell = cell(name)
    # The sim cannot decode COLLADA visuals (Panda, UR5) and draws those links' collision meshes:
    # the filter is given the geometry the sim draws, so the check measures the mask, not the meshes.
    geometry = "collision" if any("visual mesh" in warning for warning in sim_cell.sim.scene.warnings) else "visual"
    filt = self_filter(name, geometry, margin_px=0.0)
    segmenter = Segmenter(sim_cell)
    try:
        for q in poses(name, pose_count):
            sim_cell.pose(filt.joint_names, q)
            truth = segmenter.robot()
            mask = filt.render(q, sim_cell.camera, sim_cell.camera_pose) > 0
            assert np.count_nonzero(truth) > 3000, "the pose must put the arm in view for the check to mean something"
            score = iou(mask, truth)
            print(f"{name} ({geometry}) IoU {score:.3f}")
            assert score >= 0.9, f"{name} at {np.round(q, 3).tolist()}: IoU {score:.3f}"
    finally:
        segmenter.close()


def test_collision_geometry_matches_what_the_sim_draws_for_dae_arms() -> None:
    """The sim cannot decode the Panda's COLLADA visuals and draws its collision meshes: so can the filter."""
    sim_cell = cell("panda")
    visual, collision = self_filter("panda", margin_px=0.0), self_filter("panda", "collision", margin_px=0.0)
    assert {piece.source for piece in visual.shape.pieces} == {"visual"}
    assert {piece.source for piece in collision.shape.pieces} == {"collision"}
    segmenter = Segmenter(sim_cell)
    try:
        for q in poses("panda", 3, seed=4):
            sim_cell.pose(visual.joint_names, q)
            truth = segmenter.robot()
            exact = iou(collision.render(q, sim_cell.camera, sim_cell.camera_pose) > 0, truth)
            assert exact >= 0.95
            assert exact >= iou(visual.render(q, sim_cell.camera, sim_cell.camera_pose) > 0, truth) - 0.01
    finally:
        segmenter.close()


def test_mimic_finger_follows_its_leader() -> None:
    """Opening the Panda's gripper moves both fingers (finger_joint2 mimics finger_joint1): the mask widens."""
    sim_cell = cell("panda")
    filt = self_filter("panda", margin_px=0.0)
    assert "panda_finger_joint2" not in filt.joint_names  # computed from its leader, not read from joint states
    closed, opened = poses("panda", 1)[0].copy(), poses("panda", 1)[0].copy()
    finger = filt.joint_names.index("panda_finger_joint1")
    closed[finger], opened[finger] = 0.0, 0.04
    segmenter = Segmenter(sim_cell)
    try:
        for q in (closed, opened):
            sim_cell.pose(filt.joint_names, q)
            assert iou(filt.render(q, sim_cell.camera, sim_cell.camera_pose) > 0, segmenter.robot()) >= 0.9
    finally:
        segmenter.close()
    difference = (filt.render(opened, sim_cell.camera, sim_cell.camera_pose) > 0).astype(int)
    difference -= filt.render(closed, sim_cell.camera, sim_cell.camera_pose) > 0
    assert np.count_nonzero(difference > 0) > 20  # the fingers moved out


def test_links_behind_the_camera_are_clipped_not_mirrored() -> None:
    """A camera among the links (some wholly behind it, some crossing its plane) still masks what it sees."""
    name = "ur5"
    home = cell(name).sim.layout
    tool = home.home_tool_pose[:3, 3]
    # The eye halfway along the arm, 8 cm to its side, looking at the tool: the shoulder is
    # behind the camera and the upper arm passes beside the lens, through the image plane.
    eye = 0.5 * (tool + np.array([0.0, 0.0, 0.1])) + np.array([0.0, 0.08, 0.0])
    offset = eye - tool
    distance = float(np.linalg.norm(offset))
    pose = look_at(tool, distance, float(np.arcsin(offset[2] / distance)), float(np.arctan2(offset[1], offset[0])))
    near_cell = cell(name, layout=LayoutOptions(camera_pose=tuple(matrix_to_pose(pose))))
    filt = self_filter(name, "collision", margin_px=0.0)
    q = np.asarray(near_cell.sim.layout.home, dtype=float)
    near_cell.pose(filt.joint_names, q)
    mask = filt.render(q, near_cell.camera, near_cell.camera_pose) > 0
    depth = filt._points[:, 2]  # camera-frame vertices of the last render
    assert (depth < 0.0).any() and (depth > 0.2).any(), "some vertices must lie behind the camera, some in front"
    assert filt._clip.any(), "some pieces must cross the near plane"
    segmenter = Segmenter(near_cell)
    try:
        truth = segmenter.robot()
    finally:
        segmenter.close()
    print(f"behind-camera IoU {iou(mask, truth):.3f}, robot covers {np.count_nonzero(truth) / truth.size:.0%}")
    assert np.count_nonzero(truth) > 0.1 * WIDTH * HEIGHT
    assert iou(mask, truth) >= 0.9


def test_margin_pads_the_mask_by_about_the_margin() -> None:
    sim_cell = cell("xarm7")
    bare, padded = self_filter("xarm7", margin_px=0.0), self_filter("xarm7", margin_px=5.0)
    q = poses("xarm7", 1)[0]
    inner = bare.render(q, sim_cell.camera, sim_cell.camera_pose) > 0
    outer = padded.render(q, sim_cell.camera, sim_cell.camera_pose) > 0
    assert np.all(outer[inner])
    grown = np.count_nonzero(outer) - np.count_nonzero(inner)
    perimeter = sum(cv2.arcLength(c, True) for c in cv2.findContours(
        inner.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0])
    assert 4.0 * perimeter < grown < 6.5 * perimeter  # a band about 5 px wide around the silhouette


def test_out_buffer_and_a_resized_camera() -> None:
    sim_cell = cell("iiwa")
    filt = self_filter("iiwa", margin_px=2.0)
    q = poses("iiwa", 1)[0]
    own = filt.render(q, sim_cell.camera, sim_cell.camera_pose).copy()
    out = np.full((HEIGHT, WIDTH), 7, np.uint8)
    assert filt.render(q, sim_cell.camera, sim_cell.camera_pose, out=out) is out
    np.testing.assert_array_equal(out, own)
    half = CameraModel.from_values(WIDTH // 2, HEIGHT // 2, (sim_cell.camera.k * [[0.5], [0.5], [1]]).reshape(9))
    small = filt.render(q, half, sim_cell.camera_pose)
    assert small.shape == (HEIGHT // 2, WIDTH // 2)
    assert abs(np.count_nonzero(small) * 4 - np.count_nonzero(own)) < 0.1 * np.count_nonzero(own)


def test_distortion_bends_the_mask_like_the_lens() -> None:
    """With barrel distortion the arm's pixels move toward the centre, as OpenCV's own projection says."""
    sim_cell = cell("panda")
    filt = self_filter("panda", margin_px=0.0)
    q = poses("panda", 1)[0]
    k = sim_cell.camera.k
    barrel = CameraModel.from_values(WIDTH, HEIGHT, k.reshape(9), [-0.2, 0.05, 0.0, 0.0, 0.0])
    mask = filt.render(q, barrel, sim_cell.camera_pose) > 0
    # Reference: every hull vertex through cv2.projectPoints, the mask must contain (nearly) all of them.
    points = filt._points.copy()  # camera-frame vertices of the last render
    front = points[points[:, 2] > 0.05]
    pixels, _ = cv2.projectPoints(front, np.zeros(3), np.zeros(3), k, barrel.d)
    pixels = np.rint(pixels.reshape(-1, 2)).astype(int)
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < WIDTH) & (pixels[:, 1] >= 0) & (pixels[:, 1] < HEIGHT)
    pixels = pixels[inside]
    assert len(pixels) > 100
    hits = mask[np.clip(pixels[:, 1], 0, HEIGHT - 1), np.clip(pixels[:, 0], 0, WIDTH - 1)]
    assert hits.mean() > 0.97


def test_polygon_clipping() -> None:
    square = np.array([[-10.0, -10.0], [30.0, -10.0], [30.0, 30.0], [-10.0, 30.0]])
    clipped = clip_polygon(square, (0.0, 0.0), (20.0, 20.0))
    np.testing.assert_allclose(sorted(map(tuple, clipped)), [(0, 0), (0, 20), (20, 0), (20, 20)])
    assert len(clip_polygon(square + 100.0, (0.0, 0.0), (20.0, 20.0))) == 0


def test_support_points_are_hull_vertices_and_stl_reads_both_encodings(tmp_path) -> None:
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(5000, 3))
    cube = np.array([[x, y, z] for x in (-3, 3) for y in (-3, 3) for z in (-3, 3)], dtype=float)
    directions = np.vstack([np.eye(3), -np.eye(3)])
    chosen = support_points(np.vstack([cloud * 0.5, cube]), directions)
    assert len(chosen) <= 6
    assert all(np.any(np.all(np.isclose(cube, point), axis=1)) for point in chosen)
    triangle = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], dtype=np.float32)
    binary = tmp_path / "one.stl"
    record = np.zeros(1, dtype=[("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    record["corners"] = triangle
    binary.write_bytes(b"solid binary header".ljust(80, b" ") + np.uint32(1).tobytes() + record.tobytes())
    text = tmp_path / "one_ascii.stl"
    text.write_text("solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n"
                    "endloop\nendfacet\nendsolid t\n")
    np.testing.assert_allclose(read_stl(binary), triangle)
    np.testing.assert_allclose(read_stl(text), triangle)


def test_bad_options_and_descriptions_are_user_errors(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="self_filter_margin_px: expected 0 to 200"):
        SelfFilterOptions(margin_px=-1.0)
    with pytest.raises(ConfigurationError, match="self-filter geometry: expected one of visual, collision"):
        self_filter("panda", geometry="pretty")
    urdf = tmp_path / "bare.urdf"
    urdf.write_text('<robot name="bare"><link name="a"/><link name="b"/>'
                    '<joint name="j" type="revolute"><parent link="a"/><child link="b"/><axis xyz="0 0 1"/>'
                    '<limit lower="-1" upper="1" effort="1" velocity="1"/></joint></robot>')
    with pytest.raises(DescriptionError, match="found no visual or collision geometry"):
        SelfFilter(load_arm(urdf))


def test_missing_visual_mesh_falls_back_to_collision(tmp_path) -> None:
    urdf = tmp_path / "one.urdf"
    urdf.write_text(
        '<robot name="one"><link name="a"/><link name="b">'
        '<visual><geometry><mesh filename="gone.stl"/></geometry></visual>'
        '<collision><origin xyz="0 0 0.5"/><geometry><box size="0.1 0.1 1"/></geometry></collision></link>'
        '<joint name="j" type="continuous"><parent link="a"/><child link="b"/><axis xyz="0 0 1"/></joint></robot>'
    )
    filt = SelfFilter(load_arm(urdf), SelfFilterOptions(margin_px=0.0))
    assert [piece.source for piece in filt.shape.pieces] == ["collision"]
    assert "gone.stl" in filt.shape.warnings[0] and "collision geometry" in filt.shape.warnings[0]
    camera = CameraModel.from_values(100, 100, [100, 0, 49.5, 0, 100, 49.5, 0, 0, 1])
    looking_down = np.eye(4)
    looking_down[:3, :3] = np.diag([1.0, -1.0, -1.0])
    looking_down[:3, 3] = [0.0, 0.0, 3.0]
    mask = filt.render(np.zeros(1), camera, looking_down)
    # A 10 cm square seen from 2 m above its top (a 1 m tall post) at f = 100 px: about 5 px wide.
    assert 16 <= np.count_nonzero(mask) <= 49
    assert mask[49, 49] == 255 and mask[0, 0] == 0


def test_a_visual_mesh_the_loader_misreads_falls_back_to_the_collision_mesh() -> None:
    """rtb-data's KUKA KR 210 ships COLLADA visuals in inches (``<unit meter="0.0254">``) and turned.

    The mesh loader ignores the unit: read as metres, every visual link is 20-40 times too
    large and the mask covered the whole frame (IoU 0.08). Checked against its collision STL,
    each such link is drawn from the collision mesh instead, with a warning that says why.
    """
    sim_cell = cell("kuka_kr210")
    filt = SelfFilter(arm("kuka_kr210"), SelfFilterOptions(geometry="visual", margin_px=0.0))  # the node's default
    assert any("disagrees with its collision geometry" in warning for warning in filt.shape.warnings)
    segmenter = Segmenter(sim_cell)
    try:
        for q in poses("kuka_kr210", 2):
            sim_cell.pose(filt.joint_names, q)
            truth = segmenter.robot()
            score = iou(filt.render(q, sim_cell.camera, sim_cell.camera_pose) > 0, truth)
            assert score >= 0.9, f"IoU {score:.3f}"
    finally:
        segmenter.close()
