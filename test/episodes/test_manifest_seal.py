"""Episode manifests are sealed under the site's seal key: an edit made anywhere but robot_brain is refused.

Real episodes written by the real writer; each attack (``helpers/manifest_tampering.py``) is what
someone who can write the data root, but not read ``consent/seal.key``, could do to them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.episodes_support import JOINT_STATES, OPERATOR, provenance, write_joint_states
from helpers.manifest_tampering import ATTACKS, SCRIPTED, edit_bag_copy, edit_manifest

from robot_brain.cli.main import main
from robot_brain.episodes.manifest import CUSTOM_DATA_KEY, MANIFEST_NAME, SEAL_FIELD, load_manifest, write_manifest
from robot_brain.episodes.store import EpisodeStore, EpisodeWriter, ManifestSealError, read_bag_custom_data
from robot_brain.errors import UserError


def _episode(store: EpisodeStore, task: str = "reach the red cube") -> EpisodeWriter:
    with store.start_episode(provenance(task), [JOINT_STATES]) as writer:
        write_joint_states(writer, 20)
        writer.set_label("success")
    return writer


def test_every_manifest_is_sealed_and_the_bag_copy_is_the_same_document(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = _episode(store)
    document = json.loads((writer.path / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert document[SEAL_FIELD].startswith("hmac-sha256:k-")
    assert json.loads(read_bag_custom_data(writer.path)[CUSTOM_DATA_KEY]) == document
    assert store.load_manifest(writer.episode_id).label == "success"
    [entry] = store.list_episodes()
    assert entry.seal_error is None and entry.state == "complete"
    # A discard rewrites the tombstone, sealed, and leaves only manifest.json.
    store.discard_episode(writer.episode_id)
    assert sorted(p.name for p in writer.path.iterdir()) == [MANIFEST_NAME]
    assert load_manifest(writer.path).state == "discarded"


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_edited_manifest_is_refused_naming_the_file_but_still_listed(tmp_path: Path, attack: str) -> None:
    store = EpisodeStore(tmp_path / "site")
    writer, donor = _episode(store), _episode(store, "another task")
    tamper, expected = ATTACKS[attack]
    path = tamper(writer.path, donor.path, tmp_path / "forger")
    for read in (lambda: store.load_manifest(writer.episode_id), lambda: store.open_episode(writer.episode_id)):
        with pytest.raises(ManifestSealError) as caught:
            read()
        text = str(caught.value)
        assert isinstance(caught.value, UserError) and "\n" not in text
        assert text.startswith(f"episode manifest {path}: ") and expected in text and "re-record" in text
    # Listed (a purge must find it), as unverified with the reason; never discarded into a sealed tombstone.
    entry = next(e for e in store.list_episodes() if e.episode_id == writer.episode_id)
    assert entry.state == "unverified" and entry.manifest is not None and expected in entry.seal_error
    with pytest.raises(ManifestSealError):
        store.discard_episode(writer.episode_id)
    assert store.load_manifest(donor.episode_id).task == "another task"  # the others are untouched


def test_a_whole_sealed_manifest_copied_from_another_episode_is_refused(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer, scripted_one = _episode(store), _episode(store, "scripted demo")
    shutil.copy(scripted_one.path / MANIFEST_NAME, writer.path / MANIFEST_NAME)
    with pytest.raises(ManifestSealError, match=f"sealed for episode '{scripted_one.episode_id}'.*copied"):
        store.load_manifest(writer.episode_id)


def test_recovery_never_reseals_an_edited_recording(tmp_path: Path) -> None:
    """A dead recording whose manifest was edited is left as it was, not recovered into a sealed lie."""
    store = EpisodeStore(tmp_path)
    writer = store.start_episode(provenance(), [JOINT_STATES], flush_interval_s=3600)
    write_joint_states(writer, 50)
    writer.flush()
    writer.abandon()
    path = edit_manifest(writer.path, **SCRIPTED)
    edited = path.read_bytes()
    [result] = store.recover()
    assert result.outcome == "failed" and str(path) in result.detail and "does not match its seal" in result.detail
    assert path.read_bytes() == edited
    with pytest.raises(ManifestSealError):
        store.load_manifest(writer.episode_id)


def test_recovery_promotes_the_bag_copy_only_when_its_seal_checks(tmp_path: Path) -> None:
    """Killed between closing the bag and renaming the manifest, with the bag's copy edited: rebuilt, not believed."""
    store = EpisodeStore(tmp_path)
    writer = _episode(store)
    before = load_manifest(writer.path)
    before.state, before.end_time, before.end_time_ns = "recording", None, None
    write_manifest(writer.path, before)  # the sealed manifest of a recording whose bag was closed
    edit_bag_copy(writer.path, **SCRIPTED)
    [result] = store.recover()
    assert result.outcome == "recovered"  # from the bag itself and the sealed recording manifest
    recovered = store.load_manifest(writer.episode_id)
    assert recovered.operator == OPERATOR and recovered.topics[JOINT_STATES.name].count == 20


def test_ls_lists_an_edited_episode_as_unverified_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = EpisodeStore(tmp_path)
    edited, untouched = _episode(store), _episode(store, "untouched")
    path = edit_manifest(edited.path, label="failure")
    assert main(["data", "ls", "--data-root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    [error] = captured.err.splitlines()
    assert error.startswith("robot-brain data ls: error: episode manifest ") and str(path) in error
    lines = {line.split()[0]: line for line in captured.out.splitlines()[1:]}
    assert "unverified" in lines[edited.episode_id] and "complete" in lines[untouched.episode_id]
