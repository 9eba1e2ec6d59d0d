"""``data purge``: the right to erasure over a real data root (episodes, datasets, consent registry, audit log)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.export_support import ADA, make_site, record_episode, tree_digest

from robot_brain.cli.main import main
from robot_brain.consent.audit import read_audit, verify_audit
from robot_brain.consent.operators import UnknownOperatorError
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets import lerobot
from robot_brain.datasets.dataset_provenance import verify_provenance
from robot_brain.datasets.export import export_episodes
from robot_brain.datasets.lerobot_reader import STALE_MARKER, StaleDatasetError, open_dataset
from robot_brain.episodes.store import EpisodeStore
from robot_brain.erasure.purge import plan_purge


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Ada: two episodes and a discarded one; Bob: two. Datasets: mixed (Ada + Bob), Bob only, an unfinished one."""
    root = tmp_path_factory.mktemp("purge") / "site"
    site = make_site(root)
    store = EpisodeStore(root)
    ada = [
        record_episode(store, "panda", site.ada, site.ada_consent, seed=1, camera=False).episode_id,
        record_episode(store, "panda", site.ada, site.ada_consent, seed=2, offset_s=10, camera=False).episode_id,
    ]
    discarded = record_episode(store, "panda", site.ada, site.ada_consent, seed=3, offset_s=20, camera=False)
    store.discard_episode(discarded.episode_id)
    bob = [
        record_episode(store, "panda", site.bob, site.bob_consent, seed=4, offset_s=30, camera=False).episode_id,
        record_episode(store, "panda", site.bob, site.bob_consent, seed=5, offset_s=40, camera=False).episode_id,
    ]
    datasets = root / "datasets"
    export_episodes(root, [ada[0], bob[0], ada[1], bob[1]], datasets / "mixed", codec="h264")
    export_episodes(root, bob, datasets / "bob-only", codec="h264")
    return {"root": root, "site": site, "ada": ada, "discarded": discarded.episode_id, "bob": bob}


@pytest.fixture
def copy(base: dict, tmp_path: Path) -> dict:
    root = tmp_path / "site"
    shutil.copytree(base["root"], root)
    return {**base, "root": root}


def _purge(root: Path, *args: str) -> int:
    return main(["data", "purge", *args, "--data-root", str(root)])


def test_purge_removes_every_episode_marks_datasets_stale_forgets_and_logs(copy, capsys):
    root, site = copy["root"], copy["site"]
    bob_before = {episode: tree_digest(root / "episodes" / episode) for episode in copy["bob"]}
    bob_only_before = tree_digest(root / "datasets" / "bob-only")
    assert _purge(root, "--operator", ADA, "--yes") == 0
    out = capsys.readouterr().out
    assert f"purged operator {site.ada}: 3 episodes removed; consent forgotten" in out
    assert ADA not in out and "Lovelace" not in out
    # Episodes: Ada's gone (the discarded tombstone too), Bob's byte for byte as they were.
    remaining = sorted(p.name for p in (root / "episodes").iterdir() if not p.name.startswith("."))
    assert remaining == sorted(copy["bob"])
    assert {episode: tree_digest(root / "episodes" / episode) for episode in copy["bob"]} == bob_before
    assert not any((root / "episodes" / ".purging").glob("*"))
    # The mixed dataset is stale: marker, card, the reader refuses it (allow_stale opens it); Bob's untouched.
    mixed = root / "datasets" / "mixed"
    stale = json.loads((mixed / STALE_MARKER).read_text())
    assert stale["purges"][0]["operator"] == site.ada and sorted(stale["purges"][0]["episodes"]) == sorted(copy["ada"])
    card = (mixed / "README.md").read_text()
    assert card.startswith("---\n") and "**Stale dataset: do not train on it.**" in card and site.ada in card
    with pytest.raises(StaleDatasetError, match=f"purge --operator {site.ada} --rebuild"):
        open_dataset(mixed)
    assert open_dataset(mixed, allow_stale=True).stale
    assert not verify_provenance(mixed).ok  # STALE.json changed the content
    assert tree_digest(root / "datasets" / "bob-only") == bob_only_before
    # Consent: forgotten (no name), every scope refused; Bob unaffected.
    registry = ConsentRegistry(root)
    with pytest.raises(UnknownOperatorError):
        registry.resolve(ADA)
    assert not registry.check(site.ada, "record").allowed and not registry.check(site.ada, "train").allowed
    assert registry.check(site.bob, "train").allowed
    # Audit: one data.purged entry, pseudonyms only, the chain intact.
    entry = [e for e in read_audit(root) if e.kind == "data.purged"][-1]
    assert entry.details["operator"] == site.ada
    assert sorted(entry.details["episodes"]) == sorted([*copy["ada"], copy["discarded"]])
    recorded = json.loads((mixed / "meta" / "provenance.json").read_text())["content_hash"]["value"]
    assert entry.details["datasets"] == [{"path": str(mixed), "action": "stale", "content_hash": recorded}]
    assert entry.details["consent"] == "forgotten" and entry.details["complete"] is True
    assert verify_audit(root).ok
    log = (root / "consent" / "audit.jsonl").read_bytes()
    assert b"Lovelace" not in log and b"Ada" not in log


def test_rebuild_re_exports_the_dataset_without_them(copy, capsys):
    root, site = copy["root"], copy["site"]
    mixed = root / "datasets" / "mixed"
    old_hash = json.loads((mixed / "meta/provenance.json").read_text())["content_hash"]["value"]
    assert _purge(root, "--operator", site.ada, "--yes", "--rebuild", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    (outcome,) = report["datasets"]
    assert outcome["action"] == "rebuilt" and outcome["path"] == str(mixed)
    dataset = open_dataset(mixed)
    dataset.validate()
    provenance = json.loads((mixed / "meta/provenance.json").read_text())
    assert {e["source"]["operator"] for e in provenance["episodes"]} == {site.bob}
    assert [e["source"]["episode_id"] for e in provenance["episodes"]] == copy["bob"]
    assert provenance["content_hash"]["value"] == outcome["content_hash"] != old_hash
    assert provenance["export"]["options"]["codec"] == "h264"
    assert not (mixed / STALE_MARKER).exists() and verify_provenance(mixed).ok
    assert not [p for p in (root / "datasets").iterdir() if p.name.startswith(".")]
    entry = [e for e in read_audit(root) if e.kind == "data.purged"][-1]
    assert entry.details["datasets"][0]["action"] == "rebuilt"


def test_a_stale_dataset_is_rebuilt_by_a_later_purge_given_the_pseudonym(copy, capsys):
    root, site = copy["root"], copy["site"]
    assert _purge(root, "--operator", ADA, "--yes") == 0
    # The name is forgotten now: a second purge takes the pseudonym and finds the stale dataset by it.
    assert _purge(root, "--operator", ADA, "--yes") == 2
    assert "give their pseudonym" in capsys.readouterr().err
    assert _purge(root, "--operator", site.ada, "--yes", "--rebuild") == 0
    assert "rebuilt" in capsys.readouterr().out
    assert not (root / "datasets" / "mixed" / STALE_MARKER).exists()
    open_dataset(root / "datasets" / "mixed").validate()


def test_keep_enrollment_leaves_the_registry_alone(copy, capsys):
    root, site = copy["root"], copy["site"]
    assert _purge(root, "--operator", ADA, "--yes", "--keep-enrollment") == 0
    assert "consent kept" in capsys.readouterr().out
    registry = ConsentRegistry(root)
    assert registry.resolve(ADA).pseudonym == site.ada
    assert registry.check(ADA, "record").allowed
    assert not [e for e in read_audit(root) if e.kind in ("consent.revoked", "operator.forgotten")]


def test_without_yes_it_asks_and_an_answer_other_than_yes_changes_nothing(copy, capsys, monkeypatch):
    root = copy["root"]
    before = tree_digest(root)
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    assert _purge(root, "--operator", ADA) == 2
    err = capsys.readouterr().err
    assert "delete 3 episodes permanently" in err and "not confirmed: nothing was changed" in err
    assert ADA not in err
    assert tree_digest(root) == before
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal, no answer
    assert _purge(root, "--operator", ADA) == 2
    assert tree_digest(root) == before
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert _purge(root, "--operator", ADA) == 0
    assert not (root / "episodes" / copy["ada"][0]).exists()


def test_unknown_and_non_human_operators_are_one_line_errors(copy, capsys):
    root = copy["root"]
    before = tree_digest(root)
    for operator, expected in (
        ("Nobody Known", "unknown operator"),
        ("scripted", "is not a person"),
        ("policy:zz", "expected policy:"),
    ):
        assert _purge(root, "--operator", operator, "--yes") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0] and "Nobody" not in err[0], err
    assert tree_digest(root) == before


def test_the_plan_finds_copies_unfinished_exports_and_exports_recorded_outside(copy, tmp_path, capsys):
    root, site = copy["root"], copy["site"]
    outside = tmp_path / "shared" / "ada"
    export_episodes(root, copy["ada"], outside, codec="h264")  # Ada consented to export
    gone = tmp_path / "shared" / "moved"
    export_episodes(root, copy["ada"][:1], gone, codec="h264")
    shutil.rmtree(gone)
    copied = root / "datasets" / "team" / "copy-of-mixed"  # not in the audit log: found by its provenance
    shutil.copytree(root / "datasets" / "mixed", copied)
    unfinished = root / "datasets" / "unfinished"
    writer = lerobot.create(unfinished, 20, {"observation.state": lerobot.vector_feature(["a"])})
    writer.add_episode("t", {"observation.state": np.zeros((3, 1))}, provenance={"episode_id": copy["ada"][1]})
    plan = plan_purge(root, ADA)
    found = {d.path: d for d in plan.datasets}
    assert set(found) == {root / "datasets" / "mixed", copied, unfinished, outside}
    assert found[unfinished].unfinished and found[unfinished].episodes == [copy["ada"][1]]
    assert found[outside].frames == sum(
        e["length"] for e in json.loads((outside / "meta/provenance.json").read_text())["episodes"]
    )
    assert plan.unreachable_copies == [str(gone)]
    assert sorted(i for i, _ in plan.episodes) == sorted([*copy["ada"], copy["discarded"]])
    assert plan.operator == site.ada and plan.enrolled and not plan.live
    assert _purge(root, "--operator", site.ada, "--yes") == 0
    out = capsys.readouterr().out
    assert f"exported copy no longer at {gone}" in out
    for path in found:
        assert (path / STALE_MARKER).is_file()


def test_an_export_whose_path_the_audit_log_withholds_is_listed_as_unreachable(copy, tmp_path):
    """A folder named after the person: the log keeps only the path's hash, so purge cannot reach it and says so."""
    root, site = copy["root"], copy["site"]
    named = tmp_path / "shared" / ADA  # "…/Ada Lovelace": the audit log refuses the clear name
    export_episodes(root, copy["ada"][:1], named, codec="h264")
    entry = [e for e in read_audit(root) if e.kind == "dataset.exported"][-1]
    assert "withheld" in entry.details["dataset"] and ADA not in json.dumps(entry.details)
    plan = plan_purge(root, site.ada)
    listed = [copy_ for copy_ in plan.unreachable_copies if "withholds" in copy_]
    assert len(listed) == 1 and entry.details["dataset_path_sha256"] in listed[0] and ADA not in listed[0]
    inside = root / "datasets" / f"by {ADA}"  # inside the data root: the scan reaches it, nothing to list
    export_episodes(root, copy["ada"][:1], inside, codec="h264")
    assert len([c for c in plan_purge(root, site.ada).unreachable_copies if "withholds" in c]) == 1
