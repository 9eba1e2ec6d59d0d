"""Export and purge over episodes whose manifests were edited outside robot_brain (issue 16, "Trust").

Export believes a manifest's operator, consent and label only when its seal checks; a purge
never lets a bad seal stop it: it still erases the person's edited episodes and reports the
ones whose owner it cannot prove. Real episodes recorded by the real writer
(``helpers/export_support.py``), attacked as in ``helpers/manifest_tampering.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.export_support import ADA, make_site, record_episode, tree_digest
from helpers.manifest_tampering import ATTACKS, SCRIPTED, edit_manifest

from robot_brain.cli.main import main
from robot_brain.datasets.export import export_episodes
from robot_brain.episodes.store import EpisodeStore, ManifestSealError


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Ada: two episodes and a discarded one; Bob: one; a dataset of Ada's first and Bob's. Tests work on copies."""
    root = tmp_path_factory.mktemp("seals") / "site"
    site = make_site(root)
    store = EpisodeStore(root)
    ids = {
        "ada": record_episode(store, "panda", site.ada, site.ada_consent, seed=1, camera=False).episode_id,
        "ada2": record_episode(store, "panda", site.ada, site.ada_consent, seed=2, offset_s=10, camera=False)
        .episode_id,
        "discarded": record_episode(store, "panda", site.ada, site.ada_consent, seed=3, offset_s=20, camera=False)
        .episode_id,
        "bob": record_episode(store, "panda", site.bob, site.bob_consent, seed=4, offset_s=30, camera=False)
        .episode_id,
    }
    store.discard_episode(ids["discarded"])
    export_episodes(root, [ids["ada"], ids["bob"]], root / "datasets" / "mixed", codec="h264")
    return {"root": root, "site": site, "ids": ids}


@pytest.fixture
def copy(base: dict, tmp_path: Path) -> dict:
    root = tmp_path / "site"
    shutil.copytree(base["root"], root)
    return {**base, "root": root, "scratch": tmp_path / "forger"}


def _folder(copy: dict, name: str) -> Path:
    return copy["root"] / "episodes" / copy["ids"][name]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_export_refuses_an_edited_manifest_naming_the_file_and_writes_nothing(copy, attack, capsys):
    root = copy["root"]
    tamper, expected = ATTACKS[attack]
    path = tamper(_folder(copy, "ada"), _folder(copy, "ada2"), copy["scratch"])
    before = tree_digest(root)
    out = root / "datasets" / "new"
    with pytest.raises(ManifestSealError) as caught:
        export_episodes(root, [copy["ids"]["ada"], copy["ids"]["ada2"]], out)
    assert str(caught.value).startswith(f"episode manifest {path}: ") and expected in str(caught.value)
    # The command line, --all included: one line naming the file, exit 2, nothing written.
    for args in ([copy["ids"]["ada"]], ["--all"]):
        assert main(["data", "export", *args, "--out", str(out), "--data-root", str(root)]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("robot-brain data: error: episode manifest ") and str(path) in line
    assert not out.exists() and tree_digest(root) == before


def test_an_untouched_episode_exports_as_before_beside_an_edited_one(copy):
    root = copy["root"]
    edit_manifest(_folder(copy, "ada"), **SCRIPTED)
    manifest = json.loads((_folder(copy, "ada2") / "manifest.json").read_text(encoding="utf-8"))
    report = export_episodes(root, [copy["ids"]["ada2"]], root / "datasets" / "ada2")
    assert [e.episode_id for e in report.episodes] == [copy["ids"]["ada2"]] and not report.excluded
    provenance = json.loads((root / "datasets" / "ada2" / "meta" / "provenance.json").read_text(encoding="utf-8"))
    for source in (episode["source"] for episode in provenance["episodes"]):
        assert source["operator"] == copy["site"].ada and source["label"] == manifest["label"]
        assert "seal" not in source  # the seal is the site's, not part of the dataset's provenance


def test_purge_erases_the_persons_edited_episodes_and_reports_what_it_cannot_attribute(copy, capsys):
    """Operator edited to scripted (found by the sealed copy in metadata.yaml), label edited (still names her):
    both erased. Her discarded tombstone edited to scripted has no sealed copy: reported, never exported."""
    root, site, ids = copy["root"], copy["site"], copy["ids"]
    edit_manifest(_folder(copy, "ada"), **SCRIPTED)
    edit_manifest(_folder(copy, "ada2"), label="failure")
    edit_manifest(_folder(copy, "discarded"), **SCRIPTED)
    bob_before = tree_digest(_folder(copy, "bob"))
    assert main(["data", "purge", "--operator", ADA, "--yes", "--json", "--data-root", str(root)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert sorted(report["episodes_removed"]) == sorted([ids["ada"], ids["ada2"]])
    assert report["unverified"] == [ids["discarded"]] and report["consent"] == "forgotten"
    assert f"episode {ids['discarded']}'s manifest fails its seal" in captured.err
    assert not _folder(copy, "ada").exists() and not _folder(copy, "ada2").exists()
    assert tree_digest(_folder(copy, "bob")) == bob_before
    mixed = json.loads((root / "datasets" / "mixed" / "STALE.json").read_text(encoding="utf-8"))
    assert mixed["purges"][0]["operator"] == site.ada


def test_a_rebuild_blocked_by_an_edited_manifest_marks_the_dataset_stale_and_the_purge_goes_on(copy, capsys):
    root, ids = copy["root"], copy["ids"]
    path = edit_manifest(_folder(copy, "bob"), label="failure")
    assert main(["data", "purge", "--operator", ADA, "--yes", "--rebuild", "--json", "--data-root", str(root)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert ids["ada"] in report["episodes_removed"] and not _folder(copy, "ada").exists()
    [outcome] = report["datasets"]
    assert outcome["action"] == "stale" and str(path) in outcome["detail"]
    assert (root / "datasets" / "mixed" / "STALE.json").is_file()
