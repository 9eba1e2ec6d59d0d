"""``robot-brain data ls``: the listing, its recovery scan, its JSON, its errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.episodes_support import IMAGES, JOINT_STATES, provenance, write_joint_states

from robot_brain.cli.main import main
from robot_brain.episodes.manifest import MANIFEST_NAME
from robot_brain.episodes.store import EpisodeStore


def _populate(root: Path) -> dict[str, str]:
    """A complete episode, a crashed one (recoverable) and a discarded one."""
    store = EpisodeStore(root)
    with store.start_episode(provenance("stack the blocks"), [JOINT_STATES, IMAGES]) as writer:
        write_joint_states(writer, 501)  # 1.000 s at 500 Hz
        writer.report_dropped(IMAGES.name, 2)
        writer.set_label("success")
    complete = writer.episode_id
    crashed = store.start_episode(provenance("crashed"), [JOINT_STATES], flush_interval_s=3600)
    write_joint_states(crashed, 30)
    crashed.abandon()
    discarded = store.start_episode(provenance("thrown away"), [JOINT_STATES])
    discarded.discard()
    return {"complete": complete, "crashed": crashed.episode_id, "discarded": discarded.episode_id}


def test_ls_recovers_then_lists_with_every_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _populate(tmp_path)
    assert main(["data", "ls", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"recovery: {ids['crashed']}: recovered, 30 messages")
    header, *rows = out[1:]
    assert header.split() == ["ID", "STATE", "LABEL", "OPERATOR", "ROBOT", "LENGTH", "MESSAGES", "LOST", "TASK"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert by_id[ids["complete"]][1:] == [
        "complete",
        "success",
        "op-0123456789abcdef",
        "panda",
        "1.0",
        "s",
        "501",
        "2",
        "stack",
        "the",
        "blocks",
    ]
    assert by_id[ids["crashed"]][1:3] == ["recovered", "none"] and by_id[ids["crashed"]][7] == "30"
    assert ids["discarded"] not in by_id
    # The scan happened once: a second listing recovers nothing and shows the same states.
    assert main(["data", "--data-root", str(tmp_path), "ls", "--all"]) == 0
    again = capsys.readouterr().out
    assert "recovery:" not in again and "discarded" in again


def test_ls_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _populate(tmp_path)
    assert main(["data", "ls", "--json", "--data-root", str(tmp_path)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["episode_id"] for r in listing["recovered"]] == [ids["crashed"]]
    assert listing["recovered"][0]["outcome"] == "recovered" and listing["errors"] == []
    episodes = {e["episode_id"]: e for e in listing["episodes"]}
    complete = episodes[ids["complete"]]
    assert (complete["state"], complete["label"], complete["robot"], complete["task"]) == (
        "complete",
        "success",
        "panda",
        "stack the blocks",
    )
    assert complete["duration_s"] == 1.0 and complete["message_count"] == 501 and complete["lost_count"] == 2
    assert complete["topics"][IMAGES.name] == {"type": IMAGES.type, "count": 0, "dropped": 2, "late": 0}
    assert episodes[ids["crashed"]]["state"] == "recovered" and ids["discarded"] not in episodes


def test_ls_reports_a_corrupt_manifest_in_one_line_and_lists_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _populate(tmp_path)
    manifest = tmp_path / "episodes" / ids["complete"] / MANIFEST_NAME
    manifest.write_text("{ not json")
    assert main(["data", "ls", "--data-root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    [error] = captured.err.splitlines()
    assert error.startswith("robot-brain data ls: error: ") and str(manifest) in error and "not valid JSON" in error
    assert ids["crashed"] in captured.out and "unreadable" in captured.out


def test_ls_on_a_missing_or_empty_data_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "ls", "--data-root", str(tmp_path / "typo")]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert "does not exist" in error and "typo" in error
    assert main(["data", "ls", "--data-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no episodes in {tmp_path / 'episodes'}"
    assert main(["data", "ls", "--json", "--data-root", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == []


def test_data_without_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["data"])
    assert caught.value.code == 2 and "required: ACTION" in capsys.readouterr().err
