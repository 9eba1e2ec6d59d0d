"""``data export`` rules: consent at export time, states, one robot per dataset, bad input as one line, exit 2.

Every failing export must write nothing (no output folder) and change nothing in the data root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_export_support import JOINT_STATES, Site, make_site, provenance_for, record_episode, tree_digest

from robot_brain.cli.main import main
from robot_brain.data.consent import ConsentRegistry
from robot_brain.data.episodes import EpisodeProvenance, EpisodeStore
from robot_brain.data.export import export_episodes
from robot_brain.data.lerobot_reader import open_dataset


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
