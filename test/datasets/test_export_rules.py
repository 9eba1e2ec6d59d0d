"""``data export`` rules: consent at export time, states, one robot per dataset, bad input as one line, exit 2.

Every failing export must write nothing (no output folder) and change nothing in the data root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.export_support import JOINT_STATES, Site, make_site, provenance_for, record_episode, tree_digest

from robot_brain.cli.main import main
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets.export import COMMAND_NOT_YET, export_episodes
from robot_brain.datasets.lerobot_reader import open_dataset
from robot_brain.episodes.store import EpisodeProvenance, EpisodeStore


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Ada (panda, UR5), Bob (panda), a discarded and an incomplete episode of Ada's. Tests work on copies."""
    root = tmp_path_factory.mktemp("rules") / "site"
    site = make_site(root)
    store = EpisodeStore(root)
    ids = {
        "ada": record_episode(store, "panda", site.ada, site.ada_consent, seed=1).episode_id,
        "bob": record_episode(store, "panda", site.bob, site.bob_consent, seed=2, offset_s=10).episode_id,
        "ur5": record_episode(store, "ur5", site.ada, site.ada_consent, seed=3, offset_s=20, target=False).episode_id,
        "discarded": record_episode(store, "panda", site.ada, site.ada_consent, seed=4, offset_s=30).episode_id,
    }
    store.discard_episode(ids["discarded"])
    crashed = store.start_episode(  # killed before anything reached the disk: nothing to recover
        _provenance(site), [JOINT_STATES], time_ns=1_780_000_040_000_000_000, flush_interval_s=3600
    )
    crashed.abandon()
    store.recover()
    ids["incomplete"] = crashed.episode_id
    assert store.load_manifest(ids["incomplete"]).state == "incomplete"
    return {"root": root, "site": site, "ids": ids}


def _provenance(site: Site) -> EpisodeProvenance:
    return provenance_for("panda", site.ada, site.ada_consent, ("record", "train"), "crashed")


@pytest.fixture
def copy(base: dict, tmp_path: Path) -> dict:
    root = tmp_path / "site"
    shutil.copytree(base["root"], root)
    return {**base, "root": root, "registry": ConsentRegistry(root)}


def _export(root: Path, *args: str) -> int:
    return main(["data", "export", *args, "--data-root", str(root)])


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robot-brain data: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def test_revoked_train_consent_excludes_the_episode_and_says_why(copy, capsys):
    copy["registry"].revoke(copy["site"].bob, "train")
    out = copy["root"] / "datasets" / "d"
    assert _export(copy["root"], copy["ids"]["ada"], copy["ids"]["bob"], "--out", str(out), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["episode_id"] for e in report["episodes"]] == [copy["ids"]["ada"]]
    (excluded,) = report["excluded"]
    assert excluded["episode_id"] == copy["ids"]["bob"] and excluded["operator"] == copy["site"].bob
    assert excluded["reason"] == "no 'train' consent now" and "revoked" in excluded["detail"]
    provenance = json.loads((out / "meta/provenance.json").read_text())
    assert provenance["export"]["excluded"][0]["episode_id"] == copy["ids"]["bob"]
    assert "Excluded at export: 1 episodes" in (out / "README.md").read_text()
    # The human report lists it too.
    out2 = copy["root"] / "datasets" / "e"
    assert _export(copy["root"], copy["ids"]["ada"], copy["ids"]["bob"], "--out", str(out2)) == 0
    text = capsys.readouterr().out
    assert f"{copy['ids']['bob']}  {copy['site'].bob}  no 'train' consent now" in text
    assert "content hash: " in text and "resampling: kept" in text


def test_the_export_scope_is_needed_only_when_the_dataset_leaves_the_data_root(copy, tmp_path, capsys):
    ids, root = copy["ids"], copy["root"]
    inside = root / "datasets" / "inside"
    assert _export(root, ids["ada"], ids["bob"], "--out", str(inside), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["episodes"]) == 2 and report["required_scopes"] == ["train"]
    outside = tmp_path / "elsewhere" / "d"
    assert _export(root, ids["ada"], ids["bob"], "--out", str(outside), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["leaves_data_root"] is True and report["required_scopes"] == ["train", "export"]
    assert [e["episode_id"] for e in report["episodes"]] == [ids["ada"]]  # Bob never consented to export
    assert report["excluded"][0]["reason"] == "no 'export' consent now"


def test_nothing_left_to_export_is_one_line_and_writes_nothing(copy, capsys):
    copy["registry"].revoke(copy["site"].bob, "train")
    out = copy["root"] / "datasets" / "none"
    before = tree_digest(copy["root"])
    assert _export(copy["root"], copy["ids"]["bob"], "--out", str(out)) == 2
    line = _one_line_error(capsys)
    assert "nothing to export" in line and copy["ids"]["bob"] in line and "revoked" in line
    assert not out.exists()
    after = tree_digest(copy["root"])
    assert {k: v for k, v in after.items() if "consent" not in k} == {
        k: v for k, v in before.items() if "consent" not in k
    }


def test_episodes_of_different_robots_are_a_one_line_error_naming_both(copy, capsys):
    ids = copy["ids"]
    out = copy["root"] / "datasets" / "mixed"
    assert _export(copy["root"], ids["ada"], ids["ur5"], "--out", str(out)) == 2
    line = _one_line_error(capsys)
    assert ids["ada"] in line and ids["ur5"] in line and "panda" in line and "ur5" in line
    assert "different robots" in line and not out.exists()
    # --all sees both robots too; --robot picks one, skips discarded, and excludes the incomplete one.
    assert _export(copy["root"], "--all", "--out", str(out)) == 2
    assert "different robots" in _one_line_error(capsys)
    assert _export(copy["root"], "--all", "--robot", "panda", "--out", str(out), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["episode_id"] for e in report["episodes"]] == [ids["ada"], ids["bob"]]
    assert [(e["episode_id"], e["reason"]) for e in report["excluded"]] == [(ids["incomplete"], "episode incomplete")]


def test_discarded_and_incomplete_episodes_are_excluded_with_the_reason(copy, capsys):
    ids = copy["ids"]
    out = copy["root"] / "datasets" / "states"
    args = [ids["ada"], ids["discarded"], ids["incomplete"], "--out", str(out), "--json"]
    assert _export(copy["root"], *args) == 0
    excluded = {e["episode_id"]: e["reason"] for e in json.loads(capsys.readouterr().out)["excluded"]}
    assert excluded == {ids["discarded"]: "episode discarded", ids["incomplete"]: "episode incomplete"}


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_bag_is_one_line_naming_the_file_and_nothing_else_changes(copy, capsys, damage):
    ids, root = copy["ids"], copy["root"]
    bag = root / "episodes" / ids["bob"] / f"{ids['bob']}.mcap"
    data = bytearray(bag.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 4096] = bytes(4096)
    bag.write_bytes(bytes(data))
    before = tree_digest(root)
    out = root / "datasets" / "damaged"
    assert _export(root, ids["ada"], ids["bob"], "--out", str(out)) == 2
    line = _one_line_error(capsys)
    assert str(bag) in line and ids["bob"] in line
    assert not out.exists()
    assert tree_digest(root) == before


def test_missing_joint_states_unknown_episode_and_unknown_operator_are_one_line_errors(copy, capsys):
    root, site = copy["root"], copy["site"]
    store = EpisodeStore(root)
    blind = record_episode(store, "panda", site.ada, site.ada_consent, seed=5, offset_s=50, joint_states=False)
    out = root / "datasets" / "bad"
    assert _export(root, blind.episode_id, "--out", str(out)) == 2
    line = _one_line_error(capsys)
    assert "/joint_states" in line and blind.episode_id in line and "metadata.yaml" in line
    assert _export(root, "20990101-000000-abcdef", "--out", str(out)) == 2
    assert "no episode 20990101-000000-abcdef" in _one_line_error(capsys)
    stranger = record_episode(store, "panda", "op-00000000000000ff", "c-00000000000000ff", seed=6, offset_s=60)
    assert _export(root, copy["ids"]["ada"], stranger.episode_id, "--out", str(out)) == 2
    line = _one_line_error(capsys)
    assert "op-00000000000000ff" in line and stranger.episode_id in line and "unknown" in line
    assert not out.exists()


def test_a_ur5_without_gripper_or_target_exports_with_h264_and_only_its_features(copy, capsys):
    out = copy["root"] / "datasets" / "ur5"
    assert _export(copy["root"], copy["ids"]["ur5"], "--out", str(out), "--codec", "h264", "--fps", "10") == 0
    dataset = open_dataset(out)
    dataset.validate()
    assert list(dataset.features)[:6] == [
        "observation.state",
        "observation.ee_pose",
        "observation.images.camera",
        "action",
        "action.ee_pose",
        "timestamp",
    ]
    assert dataset.fps == 10 and dataset.features["observation.images.camera"]["info"]["video.codec"] == "h264"
    assert dataset.features["observation.state"]["shape"] == [6]


def test_target_point_is_omitted_when_an_episode_lacks_it_and_the_report_says_so(copy, capsys):
    site, root = copy["site"], copy["root"]
    store = EpisodeStore(root)
    without = record_episode(store, "panda", site.ada, site.ada_consent, seed=7, offset_s=70, target=False)
    report = export_episodes(root, [copy["ids"]["ada"], without.episode_id], root / "datasets" / "partial")
    assert "observation.target_point" not in report.features
    assert without.episode_id in report.omitted_features["observation.target_point"]
    assert report.required_scopes == ["train"] and report.dataset_episodes == 2


def test_trajectory_commands_and_a_controller_joint_order_give_the_same_actions(copy, capsys):
    site, root = copy["site"], copy["root"]
    store = EpisodeStore(root)
    shuffled = [6, 0, 5, 1, 4, 2, 3]
    names = [f"panda_joint{i + 1}" for i in shuffled]
    reference = record_episode(store, "panda", site.ada, site.ada_consent, seed=8, offset_s=80, camera=False)
    trajectory = record_episode(
        store,
        "panda",
        site.ada,
        site.ada_consent,
        seed=8,
        offset_s=90,
        camera=False,
        commands="trajectory",
        command_order=shuffled,
    )
    reordered = record_episode(
        store, "panda", site.ada, site.ada_consent, seed=8, offset_s=100, camera=False, command_order=shuffled
    )
    actions = {}
    for name, episode, extra in (
        ("reference", reference, []),
        ("trajectory", trajectory, []),
        ("reordered", reordered, ["--command-joints", ",".join(names)]),
    ):
        out = root / "datasets" / name
        assert _export(root, episode.episode_id, "--out", str(out), *extra) == 0
        actions[name] = open_dataset(out).frames(columns=["action", "action.ee_pose"])
    for name in ("trajectory", "reordered"):
        for column in ("action", "action.ee_pose"):
            assert np.array_equal(actions[name][column], actions["reference"][column]), (name, column)
    # Without the controller's order, a reordered command is exported as given: visibly different.
    out = root / "datasets" / "wrong-order"
    assert _export(root, reordered.episode_id, "--out", str(out)) == 0
    assert not np.allclose(open_dataset(out).frames(columns=["action"])["action"], actions["reference"]["action"])
    assert _export(root, reordered.episode_id, "--out", str(root / "x"), "--command-joints", "a,b") == 2
    assert "expected an order of the arm's joints" in _one_line_error(capsys)


def test_an_occluded_target_is_held_like_the_policy_node_does_and_counted(copy):
    site, root = copy["site"], copy["root"]
    store = EpisodeStore(root)
    occluded = record_episode(
        store, "panda", site.ada, site.ada_consent, seed=9, offset_s=110, camera=False, target_gap=(1.0, 1.8)
    )
    report = export_episodes(root, [occluded.episode_id], root / "datasets" / "occluded")
    (episode,) = report.episodes
    assert len(episode.dataset_episodes) == 1 and report.dropped_by_reason == {COMMAND_NOT_YET: 5}
    # Targets at k/12 + 11 ms, none in [1.0, 1.8): the last before the gap came at 0.9277 s, the next at 1.8443 s.
    # Frames 1.15, 1.2, ..., 1.8 s use one more than 0.2 s old: 14 frames, all kept.
    assert episode.stale_target_frames == 14
    frames = open_dataset(root / "datasets" / "occluded").frames(columns=["observation.target_point"])
    held = frames["observation.target_point"][int((1.5 - 0.25) * 20)]
    assert np.allclose(held, np.array([0.45, -0.1, 0.12]) + 0.001 * 11, atol=1e-6)  # the target of 11/12 s
