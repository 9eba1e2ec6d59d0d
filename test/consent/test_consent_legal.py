"""Legal basis, retention and objection in the consent registry (real registry files, real CLI processes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_consent_cli import cli

from robot_brain.consent.audit import encode_entry, line_sha256, read_audit
from robot_brain.consent.legal import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS
from robot_brain.consent.operators import ConsentError
from robot_brain.consent.registry import ConsentRegistry, verify_consent
from robot_brain.storage.files import atomic_write_json

ADA, BOB = "Ada Lovelace", "Bob Ångström"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture
def registry(tmp_path: Path) -> ConsentRegistry:
    return ConsentRegistry(tmp_path / "site")


# -- the legal basis -----------------------------------------------------------------------


def test_the_cli_refuses_an_enrolment_without_a_legal_basis(tmp_path: Path) -> None:
    result = cli(tmp_path, "enroll", ADA, "--scope", "record")
    assert result.returncode == 2 and "--legal-basis" in result.stderr
    assert not (tmp_path / "site/consent/registry.json").exists(), "nothing is enrolled"
    bad = cli(tmp_path, "enroll", ADA, "--scope", "record", "--legal-basis", "goodwill")
    assert bad.returncode == 2 and "bad legal basis 'goodwill'" in bad.stderr and ADA not in bad.stderr


def test_a_collective_agreement_needs_its_reference_and_records_it(tmp_path: Path) -> None:
    missing = cli(tmp_path, "enroll", ADA, "--scope", "record,train", "--legal-basis", "collective_agreement")
    assert missing.returncode == 2 and "--agreement REF" in missing.stderr
    assert not (tmp_path / "site/consent/registry.json").exists()
    named = cli(tmp_path, "enroll", ADA, "--scope", "record", "--legal-basis", "collective_agreement",
                "--agreement", "BV 7 signed by Ada Lovelace")
    assert named.returncode == 2 and "holds a person's name" in named.stderr and ADA not in named.stderr
    stray = cli(tmp_path, "enroll", ADA, "--scope", "record", "--legal-basis", "consent", "--agreement", "BV-7")
    assert stray.returncode == 2 and "collective_agreement" in stray.stderr

    enrolled = cli(tmp_path, "enroll", ADA, "--scope", "record,train", "--legal-basis", "collective-agreement",
                   "--agreement", "BV-2026-03 Robot cell 4", "--retention-days", "90")
    assert enrolled.returncode == 0, enrolled.stderr
    assert "legal basis collective_agreement (BV-2026-03 Robot cell 4), episodes kept 90 days" in enrolled.stdout
    stored = json.loads((tmp_path / "site/consent/registry.json").read_text())["operators"][0]["consents"][0]
    assert (stored["legal_basis"], stored["agreement"], stored["retention_days"]) == (
        "collective_agreement", "BV-2026-03 Robot cell 4", 90
    )
    (granted,) = [e for e in read_audit(tmp_path / "site") if e.kind == "consent.granted"]
    assert granted.details["consent"]["legal_basis"] == "collective_agreement"
    assert granted.details["consent"]["agreement"] == "BV-2026-03 Robot cell 4"
    shown = cli(tmp_path, "show", ADA).stdout
    assert "basis      collective_agreement (BV-2026-03 Robot cell 4): GDPR Art. 88" in shown
    assert "retention  90 days from each recording" in shown
    listing = cli(tmp_path, "list").stdout.splitlines()
    assert listing[0].split()[-3:] == ["LEGAL", "BASIS", "RETENTION"] and listing[1].endswith("90d")
    assert cli(tmp_path, "verify").returncode == 0


def test_legitimate_interest_and_the_default_and_bounds_of_retention(registry: ConsentRegistry) -> None:
    enrolled = registry.enroll(ADA, "record", legal_basis="legitimate_interest", now=T0)
    assert enrolled.consent.legal_basis == "legitimate_interest"
    assert enrolled.consent.retention_days == DEFAULT_RETENTION_DAYS == 365
    decision = registry.check(ADA, "record", at=days(1))
    assert decision.allowed and decision.legal_basis == "legitimate_interest" and decision.retention_days == 365
    assert decision.to_provenance()["consent_legal_basis"] == "legitimate_interest"
    for bad in (0, -3, MAX_RETENTION_DAYS + 1, "a year"):
        with pytest.raises(ConsentError, match="retention"):
            registry.enroll(BOB, "record", retention_days=bad, now=days(1))
    assert registry.enroll(BOB, "record", retention_days=MAX_RETENTION_DAYS, now=days(1)).consent.retention_days == 3650


def _strip_new_fields(root: Path) -> None:
    """Rewrite the registry and its audit chain as the code before legal bases wrote them (no new keys)."""
    new = ("legal_basis", "agreement", "retention_days", "objected_at")
    path = root / "consent/registry.json"
    document = json.loads(path.read_text())
    for operator in document["operators"]:
        for record in operator["consents"]:
            for key in new:
                record.pop(key)
    atomic_write_json(path, document, mode=0o600)
    lines, prev = [], "0" * 64
    for entry in read_audit(root):
        details = json.loads(json.dumps(dict(entry.details)))
        for key in new:
            details.get("consent", {}).pop(key, None)
        line = encode_entry(entry.seq, entry.time, entry.kind, details, prev)
        lines.append(line)
        prev = line_sha256(line)
    (root / "consent/audit.jsonl").write_bytes(b"".join(lines))
    atomic_write_json(root / "consent/audit.head", {"seq": len(lines), "sha256": prev}, mode=0o600)


def test_a_registry_written_before_legal_bases_reads_as_consent_without_retention(tmp_path: Path) -> None:
    root = tmp_path / "site"
    ConsentRegistry(root).enroll(ADA, "record,train", now=T0)
    _strip_new_fields(root)
    assert "legal_basis" not in (root / "consent/registry.json").read_text()
    registry = ConsentRegistry(root)
    (record,) = registry.operator(ADA).consents
    assert record.legal_basis == "consent" and record.retention_days is None and record.agreement is None
    old_episode = registry.check_episode(ADA, "train", recorded_at=days(1), at=days(5000))
    assert old_episode.allowed and old_episode.retention_ends_at is None, "no period recorded: no expiry"
    verified = verify_consent(root)
    assert verified.ok, verified.problems
    assert any("reads as legal basis 'consent' with no retention period" in w for w in verified.warnings)
    # Re-enrolling records a basis and a period, and the log still matches the registry.
    registry.enroll(ADA, "record,train", legal_basis="legitimate_interest", now=days(2))
    assert verify_consent(root).ok and not verify_consent(root).warnings


def test_editing_the_legal_basis_or_retention_in_the_registry_is_detected(tmp_path: Path) -> None:
    root = tmp_path / "site"
    ConsentRegistry(root).enroll(ADA, "record", legal_basis="legitimate_interest", retention_days=30, now=T0)
    path = root / "consent/registry.json"
    intact = path.read_text()
    for edit in ('"retention_days": 30', '"legal_basis": "legitimate_interest"'):
        assert edit in intact
        replacement = '"retention_days": 3650' if "retention" in edit else '"legal_basis": "consent"'
        path.write_text(intact.replace(edit, replacement))
        found = verify_consent(root)
        assert not found.ok and "differs from the audit log in" in found.problems[0]


# -- retention -----------------------------------------------------------------------------


def test_an_episode_past_its_retention_is_refused_like_withdrawn_consent(registry: ConsentRegistry) -> None:
    consent = registry.enroll(ADA, "record,train,export", retention_days=30, now=T0).consent
    recorded = days(1)
    inside = registry.check_episode(ADA, "train", recorded_at=recorded, consent_id=consent.consent_id, at=days(30.9))
    assert inside.allowed and inside.retention_ends_at == days(31) and not inside.retention_expired
    past = registry.check_episode(ADA, "train", recorded_at="2026-03-02T08:00:00.000000Z", at=days(31))
    assert not past.allowed and past.retention_expired and past.consent_id == consent.consent_id
    assert "retention period over" in past.reason and "treated as withdrawn consent" in past.reason
    assert registry.check(ADA, "train", at=days(31)).allowed, "the person's consent itself is untouched"
    unknown_time = registry.check_episode(ADA, "train", recorded_at=None, at=days(2))
    assert not unknown_time.allowed and "recording time is unknown" in unknown_time.reason
    machine = registry.check_episode("scripted", "train", recorded_at=days(-9999), at=days(31))
    assert machine.allowed, "machine-made episodes have no retention"


def test_the_shorter_of_the_recording_and_the_present_retention_applies(registry: ConsentRegistry) -> None:
    first = registry.enroll(ADA, "record,train", retention_days=100, now=T0).consent
    registry.enroll(ADA, "record,train", retention_days=10, now=days(5))  # shortened: applies at once
    shortened = registry.check_episode(ADA, "train", recorded_at=days(1), consent_id=first.consent_id, at=days(12))
    assert not shortened.allowed and shortened.retention_days == 10
    registry.enroll(ADA, "record,train", retention_days=1000, now=days(20))  # lengthened: never extends
    lengthened = registry.check_episode(ADA, "train", recorded_at=days(1), consent_id=first.consent_id, at=days(102))
    assert not lengthened.allowed and lengthened.retention_days == 100
    later = registry.check_episode(ADA, "train", recorded_at=days(21), at=days(500))
    assert later.allowed and later.retention_days == 1000


# -- objection ---------------------------------------------------------------------------------


def test_an_objection_is_a_revocation_of_everything_logged_as_an_objection(tmp_path: Path) -> None:
    root = tmp_path / "site"
    registry = ConsentRegistry(root)
    ada = registry.enroll(ADA, "record,train,export", legal_basis="legitimate_interest", now=T0)
    bob = registry.enroll(BOB, "record,train", now=T0)
    registry.revoke(BOB, now=days(1))
    objection = registry.object(ADA, now=days(1))
    assert objection.revoked == ("record", "train", "export") and objection.consent_id == ada.consent.consent_id
    for scope in ("record", "train", "export"):
        objected, revoked = registry.check(ADA, scope, at=days(2)), registry.check(BOB, scope, at=days(2))
        if scope != "export":
            assert not objected.allowed and not revoked.allowed
            assert revoked.reason.replace(bob.consent.consent_id, "C") in objected.reason.replace(
                ada.consent.consent_id, "C"
            ), "the same refusal as a revocation"
        assert "objection (GDPR Art. 21)" in objected.reason
    assert registry.check(ADA, "record", at=days(0.5)).allowed, "effective from the objection on"
    (entry,) = [e for e in read_audit(root) if e.kind == "consent.objected"]
    assert entry.details == {
        "operator": ada.operator.pseudonym,
        "consent_id": ada.consent.consent_id,
        "scopes": ["record", "train", "export"],
        "at": "2026-03-02T08:00:00.000000Z",
        "legal_basis": "legitimate_interest",
        "meaning": "objection (GDPR Art. 21)",
    }
    assert registry.operator(ADA).consents[0].objected_at == days(1)
    assert verify_consent(root).ok, "the objection replays from the log"
    assert registry.object(ADA, now=days(3)).revoked == (), "nothing left in force: nothing logged"
    assert [e.kind for e in read_audit(root)].count("consent.objected") == 1
    path = root / "consent/registry.json"
    path.write_text(path.read_text().replace('"objected_at": "2026-03-02T08:00:00.000000Z"', '"objected_at": null'))
    assert not verify_consent(root).ok, "an objection removed from the registry is detected"


def test_consent_object_on_the_command_line(tmp_path: Path) -> None:
    enrolled = cli(tmp_path, "enroll", ADA, "--scope", "record,train", "--legal-basis", "legitimate_interest")
    assert enrolled.returncode == 0, enrolled.stderr
    objected = cli(tmp_path, "object", "ada lovelace")
    assert objected.returncode == 0, objected.stderr
    assert objected.stdout.startswith("objection recorded for op-") and "objection (GDPR Art. 21)" in objected.stdout
    assert "revoked record,train of consent c-" in objected.stdout and ADA not in objected.stdout
    assert "objected " in cli(tmp_path, "show", ADA).stdout
    again = cli(tmp_path, "object", ADA)
    assert again.returncode == 0 and again.stdout.startswith("nothing to object to")
    assert cli(tmp_path, "object", "Mallory").returncode == 2
    assert cli(tmp_path, "verify").returncode == 0
