"""``data purge --expired``: episodes past their retention period erased over a real data root.

Ada enrolled with the longest retention (make_site); Cara under a works agreement with 30 days. Cara has a
kept episode and a discarded one; the dataset ``both`` holds Ada's and Cara's kept episodes.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers.export_support import GRANTED, START_NS, make_site, record_episode, tree_digest
from helpers.manifest_tampering import edit_manifest

from robot_brain.cli.main import main
from robot_brain.consent.audit import read_audit
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets.dataset_provenance import erased_dataset_hashes
from robot_brain.datasets.export import export_episodes
from robot_brain.datasets.lerobot_reader import STALE_MARKER, StaleDatasetError, open_dataset
from robot_brain.episodes.store import EpisodeStore
from robot_brain.erasure.retention import plan_expired, purge_expired
from robot_brain.storage.paths import DataLayout

CARA = "Cara Hopper"
RECORDED = datetime.fromtimestamp(START_NS / 1e9, tz=timezone.utc)
INSIDE = RECORDED + timedelta(days=10)
PAST = RECORDED + timedelta(days=40)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("retention-purge") / "site"
    site = make_site(root)
    cara = ConsentRegistry(root).enroll(CARA, "record,train", legal_basis="collective_agreement",
                                        agreement="BV-2026-03", retention_days=30, now=GRANTED)
    pseudonym, consent = cara.operator.pseudonym, cara.consent.consent_id
    store = EpisodeStore(root)
    ada = record_episode(store, "panda", site.ada, site.ada_consent, seed=1, camera=False).episode_id
    kept = record_episode(store, "panda", pseudonym, consent, seed=2, offset_s=10, camera=False).episode_id
    discarded = record_episode(store, "panda", pseudonym, consent, seed=3, offset_s=20, camera=False).episode_id
    store.discard_episode(discarded)
    export_episodes(root, [ada, kept], root / "datasets" / "both", codec="h264", now=INSIDE)
    return {"root": root, "site": site, "cara": pseudonym, "ada": ada, "kept": kept, "discarded": discarded}


@pytest.fixture
def copy(base: dict, tmp_path: Path) -> dict:
    root = tmp_path / "site"
    shutil.copytree(base["root"], root)
    return {**base, "root": root}


def _episodes(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "episodes").iterdir() if not p.name.startswith("."))


def test_nothing_is_expired_inside_the_retention_period(copy: dict) -> None:
    before = tree_digest(copy["root"])
    plan = plan_expired(copy["root"], now=INSIDE)
    assert plan.episodes == [] and plan.datasets == [] and plan.kept == 3
    report = purge_expired(copy["root"], now=INSIDE)
    assert report.episodes_removed == [] and report.audit_seq is None
    assert tree_digest(copy["root"]) == before, "nothing changed, nothing logged"


def test_purge_expired_removes_expired_episodes_marks_the_dataset_and_keeps_the_rest(copy: dict) -> None:
    root = copy["root"]
    ada_before = tree_digest(root / "episodes" / copy["ada"])
    report = purge_expired(root, now=PAST)
    assert sorted(report.episodes_removed) == sorted([copy["kept"], copy["discarded"]]) and not report.problems
    assert {e.operator for e in report.expired} == {copy["cara"]} and report.kept == 1
    assert _episodes(root) == [copy["ada"]]
    assert tree_digest(root / "episodes" / copy["ada"]) == ada_before, "inside its retention: untouched"
    both = root / "datasets" / "both"
    stale = json.loads((both / STALE_MARKER).read_text())
    assert stale["purges"] == [{"operator": None, "episodes": [copy["kept"]], "at": "2026-07-07T20:26:40.000000Z",
                                "reason": "retention"}]
    assert "retention period over" in (both / "README.md").read_text()
    with pytest.raises(StaleDatasetError):
        open_dataset(both)
    (entry,) = [e for e in read_audit(root) if e.kind == "data.purged"]
    assert entry.seq == report.audit_seq and entry.details["reason"] == "retention"
    assert "operator" not in entry.details and "operators" not in entry.details, "no operator is purged"
    assert [e["operator"] for e in entry.details["expired"]] == [copy["cara"]] * 2
    assert entry.details["datasets"][0]["action"] == "stale"
    assert entry.details["datasets"][0]["content_hash"] in erased_dataset_hashes(DataLayout(root)), (
        "training refuses the dataset by its content hash, whatever STALE.json says"
    )
    assert ConsentRegistry(root).check(CARA, "record", at=PAST).allowed, "the person's consent stays as it was"
    assert CARA not in json.dumps(report.to_json())


def test_purge_expired_with_rebuild_reexports_the_dataset_without_them(copy: dict) -> None:
    report = purge_expired(copy["root"], rebuild=True, now=PAST)
    (outcome,) = report.datasets
    assert outcome.action == "rebuilt" and not report.problems
    both = copy["root"] / "datasets" / "both"
    provenance = json.loads((both / "meta/provenance.json").read_text())
    assert {e["source"]["episode_id"] for e in provenance["episodes"]} == {copy["ada"]}
    assert not (both / STALE_MARKER).exists()
    assert open_dataset(both).num_episodes >= 1


def test_a_dataset_still_holding_an_expired_episode_is_found_without_the_episode(copy: dict) -> None:
    shutil.rmtree(copy["root"] / "episodes" / copy["kept"])  # deleted by hand: the dataset still holds it
    plan = plan_expired(copy["root"], now=PAST)
    assert [e.episode_id for e in plan.episodes] == [copy["discarded"]]
    (dataset,) = plan.datasets
    assert dataset.path.name == "both" and dataset.episodes == [copy["kept"]]


def test_data_purge_expired_on_the_command_line(copy: dict, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(copy["root"])
    with pytest.raises(SystemExit) as usage:  # one or the other
        main(["data", "purge", "--expired", "--operator", CARA, "--data-root", root])
    assert usage.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main(["data", "purge", "--expired", "--yes", "--json", "--data-root", root]) == 0  # the present: 2026-12+
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["episodes_removed"]) == sorted([copy["kept"], copy["discarded"]])
    assert report["datasets"][0]["action"] == "stale" and report["kept"] == 1
    assert _episodes(copy["root"]) == [copy["ada"]]
    assert main(["data", "purge", "--expired", "--yes", "--data-root", root]) == 0
    assert "purged expired episodes: 0 removed, 1 inside their retention period kept" in capsys.readouterr().out


def test_an_edited_start_time_does_not_keep_an_episode_past_its_retention(copy: dict) -> None:
    """The manifest's recording time moved a year on by hand: the bag's sealed copy still dates the episode."""
    root = copy["root"]
    edit_manifest(root / "episodes" / copy["kept"], start_time="2027-07-01T00:00:00.000000Z")
    plan = plan_expired(root, now=PAST)
    assert copy["kept"] in [e.episode_id for e in plan.episodes], "the edit kept the episode past its retention"
