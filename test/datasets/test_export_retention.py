"""Retention and objection at export and training time, and the dataset card's Croissant RAI fields.

Real episodes recorded through the episode store, real exports, the training screen on the result.
Ada enrolled on consent (the longest retention); Cara under a works agreement with 30 days' retention.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers.export_support import ADA, GRANTED, START_NS, make_site, record_episode

from robot_brain.consent.audit import read_audit
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets.dataset_provenance import verify_provenance
from robot_brain.datasets.export import export_episodes
from robot_brain.datasets.rai import RAI_PATH
from robot_brain.episodes.store import EpisodeStore
from robot_brain.learning import training_data as td
from robot_brain.storage.paths import DataLayout

CARA = "Cara Hopper"
AGREEMENT = "BV-2026-03 Robot cell 4"
RECORDED = datetime.fromtimestamp(START_NS / 1e9, tz=timezone.utc)
INSIDE = RECORDED + timedelta(days=10)
"""Both episodes inside their retention."""
PAST = RECORDED + timedelta(days=40)
"""Cara's 30 days are over, Ada's are not."""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("retention") / "site"
    site = make_site(root)
    cara = ConsentRegistry(root).enroll(CARA, "record,train,export", legal_basis="collective_agreement",
                                        agreement=AGREEMENT, retention_days=30, now=GRANTED)
    store = EpisodeStore(root)
    ids = {
        "ada": record_episode(store, "panda", site.ada, site.ada_consent, seed=1).episode_id,
        "cara": record_episode(store, "panda", cara.operator.pseudonym, cara.consent.consent_id, seed=2,
                               offset_s=10).episode_id,
    }
    return {"root": root, "site": site, "cara": cara.operator.pseudonym, "ids": ids}


@pytest.fixture
def copy(base: dict, tmp_path: Path) -> dict:
    root = tmp_path / "site"
    shutil.copytree(base["root"], root)
    return {**base, "root": root}


def _export(copy: dict, name: str, now: datetime):
    return export_episodes(copy["root"], list(copy["ids"].values()), copy["root"] / "datasets" / name, now=now)


def test_export_refuses_an_episode_past_its_retention_and_keeps_one_inside(copy: dict) -> None:
    inside = _export(copy, "inside", INSIDE)
    assert sorted(e.episode_id for e in inside.episodes) == sorted(copy["ids"].values()) and not inside.excluded
    past = _export(copy, "past", PAST)
    assert [e.episode_id for e in past.episodes] == [copy["ids"]["ada"]]
    (excluded,) = past.excluded
    assert excluded.episode_id == copy["ids"]["cara"] and excluded.reason == "retention period over"
    assert "kept 30 days" in excluded.detail and "treated as withdrawn consent" in excluded.detail
    provenance = json.loads((copy["root"] / "datasets/past/meta/provenance.json").read_text())
    (source,) = {e["source"]["episode_id"]: e["source"] for e in provenance["episodes"]}.values()
    assert source["consent_at_export"]["consent_retention_days"] == 3650
    assert source["consent_at_export"]["retention_ends_at"].startswith("2036-")


def test_training_refuses_an_episode_that_expired_after_its_export(copy: dict) -> None:
    _export(copy, "inside", INSIDE)
    layout = DataLayout(copy["root"])
    datasets = td.open_datasets([copy["root"] / "datasets/inside"], layout)
    early = td.screen_datasets(datasets, layout, at=INSIDE)
    assert {e.operator for e in early.included} == {copy["site"].ada, copy["cara"]} and not early.excluded
    late = td.screen_datasets(datasets, layout, at=PAST)
    assert {e.operator for e in late.included} == {copy["site"].ada}
    assert late.excluded and {e.operator for e in late.excluded} == {copy["cara"]}
    assert all("retention period over" in e.reason for e in late.excluded)
    (included,) = {e.consent["retention_days"] for e in late.included}
    assert included == 3650


def test_an_objection_excludes_the_episode_like_a_revocation(copy: dict) -> None:
    ConsentRegistry(copy["root"]).object(CARA, now=INSIDE)
    report = _export(copy, "objected", INSIDE + timedelta(hours=1))
    (excluded,) = report.excluded
    assert excluded.episode_id == copy["ids"]["cara"] and excluded.reason == "no 'train' consent now"
    assert "was revoked at" in excluded.detail and "opt-out under the collective agreement" in excluded.detail
    assert [e.kind for e in read_audit(copy["root"])].count("consent.objected") == 1


def test_the_card_and_croissant_rai_file_carry_the_data_collection_fields_and_no_names(copy: dict) -> None:
    _export(copy, "inside", INSIDE)
    dataset = copy["root"] / "datasets/inside"
    card = (dataset / "README.md").read_text()
    rai = json.loads((dataset / RAI_PATH).read_text())
    assert rai["dct:conformsTo"] == "http://mlcommons.org/croissant/RAI/1.0"
    assert rai["@context"]["rai"] == "http://mlcommons.org/croissant/RAI/"
    for field in ("rai:dataCollection", "rai:dataCollectionType", "rai:dataCollectionTimeframe",
                  "rai:personalSensitiveInformation", "rai:dataUseCases", "rai:dataSocialImpact",
                  "rai:dataCollectionRawData", "rai:dataReleaseMaintenancePlan"):
        assert rai[field], field
        assert f"**{field}**" in card, field
    start, end = rai["rai:dataCollectionTimeframe"].split("/")
    assert start.startswith("2026-05-28T") and end >= start
    assert rai["rai:dataCollectionType"] == ["Direct measurement"]
    bases = {item["legal_basis"]: item for item in rai["robot_brain:legalBases"]}
    assert bases["consent"]["operators"] == 1 and bases["consent"]["episodes"] == 1
    agreement = bases["collective_agreement"]
    assert agreement["operators"] == 1 and agreement["agreements"] == [AGREEMENT]
    retention = {item["retention_days"]: item for item in rai["robot_brain:retention"]}
    assert retention[30]["operators"] == 1 and retention[30]["first_expiry"].startswith("2026-06-27")
    assert retention[3650]["operators"] == 1
    assert "| collective_agreement: GDPR Art. 88 (collective or works agreement) | 1 | 1 | " + AGREEMENT in card
    assert "| 30 days | 1 | 1 | 2026-06-27" in card
    text = json.dumps(rai, ensure_ascii=False)
    for name in (ADA, CARA, "Lovelace", "Hopper"):
        assert name not in card and name not in text
    assert copy["site"].ada not in text and copy["cara"] not in text, "the RAI file counts operators, never names them"


def test_the_content_hash_covers_the_croissant_rai_file(copy: dict) -> None:
    _export(copy, "inside", INSIDE)
    dataset = copy["root"] / "datasets/inside"
    provenance = json.loads((dataset / "meta/provenance.json").read_text())
    assert RAI_PATH in provenance["files"] and verify_provenance(dataset).ok
    path = dataset / RAI_PATH
    path.write_text(path.read_text().replace('"operators": 1', '"operators": 0', 1))
    check = verify_provenance(dataset)
    assert not check.ok and check.changed == [RAI_PATH]
    for name in ("again", "again2"):
        _export(copy, name, INSIDE)
    again = (copy["root"] / "datasets/again" / RAI_PATH).read_bytes()
    assert again == (copy["root"] / "datasets/again2" / RAI_PATH).read_bytes(), "no time of its own: reproducible"
