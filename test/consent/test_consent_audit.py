"""The hash-chained audit log: every kind of tampering is detected and the first bad entry named."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from robot_brain.consent.audit import GENESIS_HASH, AuditLogError, line_sha256, read_audit, verify_audit
from robot_brain.consent.events import append_audit
from robot_brain.consent.registry import ConsentRegistry, verify_consent

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def site(tmp_path: Path) -> ConsentRegistry:
    """A registry with eight audit entries: key, three grants, a revocation, three exports."""
    registry = ConsentRegistry(tmp_path / "site")
    ada = registry.enroll("Ada Lovelace", "record,train,export", now=T0).operator.pseudonym
    registry.enroll("Bob", "record", now=T0 + timedelta(hours=1))
    registry.enroll("Cara", "record,train", now=T0 + timedelta(hours=2))
    registry.revoke("Bob", now=T0 + timedelta(hours=3))
    for index in range(3):
        append_audit(registry.layout, "dataset.exported", {"operators": [ada], "dataset": f"ds-{index}"})
    return registry


def lines_of(site: ConsentRegistry) -> list[bytes]:
    return site.layout.audit_log_path.read_bytes().splitlines(keepends=True)


def write_lines(site: ConsentRegistry, lines: list[bytes]) -> None:
    site.layout.audit_log_path.write_bytes(b"".join(lines))


def test_an_intact_log_chains_every_line_to_the_one_before(site: ConsentRegistry) -> None:
    entries = read_audit(site.layout)
    assert [entry.seq for entry in entries] == list(range(1, 9))
    assert [entry.kind for entry in entries][:5] == [
        "key.created",
        "consent.granted",
        "consent.granted",
        "consent.granted",
        "consent.revoked",
    ]
    raw = lines_of(site)
    assert entries[0].prev == GENESIS_HASH
    for previous, entry in zip(raw, entries[1:], strict=False):
        assert entry.prev == line_sha256(previous)
    check = verify_audit(site.layout)
    assert check.ok and check.lines == 8 and check.head_sha256 == line_sha256(raw[-1])
    head = json.loads(site.layout.audit_head_path.read_text())
    assert head == {"seq": 8, "sha256": check.head_sha256}
    assert verify_consent(site.layout).ok


def test_an_edited_middle_line_is_named(site: ConsentRegistry) -> None:
    lines = lines_of(site)
    lines[5] = lines[5].replace(b"ds-0", b"ds-X")
    write_lines(site, lines)
    check = verify_audit(site.layout)
    assert not check.ok and check.first_bad_line == 6
    assert check.problems[0].startswith("consent/audit.jsonl line 6 (entry 6) was edited")


def test_an_edit_that_keeps_the_line_valid_json_in_a_consent_entry_is_named_and_caught_twice(
    site: ConsentRegistry,
) -> None:
    lines = lines_of(site)
    entry = json.loads(lines[2])
    entry["details"]["consent"]["scopes"] = ["record", "train", "export"]
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    write_lines(site, lines)
    result = verify_consent(site.layout)
    assert not result.ok
    assert result.problems[0].startswith("consent/audit.jsonl line 3 (entry 3) was edited")
    assert any("differs from the audit log in scopes" in problem for problem in result.problems)


def test_a_deleted_middle_line_is_named(site: ConsentRegistry) -> None:
    lines = lines_of(site)
    del lines[4]
    write_lines(site, lines)
    check = verify_audit(site.layout)
    assert not check.ok and check.first_bad_line == 5
    assert "line 5 (entry 6, dataset.exported): follows entry 4: entry 5 deleted" in check.problems[0]
    assert len(check.problems) == 1, "one deletion, one problem: later entries are not all blamed"


def test_reordered_lines_are_named(site: ConsentRegistry) -> None:
    lines = lines_of(site)
    lines[2], lines[3] = lines[3], lines[2]
    write_lines(site, lines)
    check = verify_audit(site.layout)
    assert not check.ok and check.first_bad_line == 3
    assert "line 3 (entry 4, consent.granted)" in check.problems[0]


def test_a_cut_off_tail_and_an_edited_last_line_are_caught_by_the_head(site: ConsentRegistry) -> None:
    original = lines_of(site)
    write_lines(site, original[:-2])
    check = verify_audit(site.layout)
    assert not check.ok and "ends at entry 6 but audit.head records entry 8" in check.problems[0]

    edited = [*original[:-1], original[-1].replace(b"ds-2", b"ds-9")]
    write_lines(site, edited)
    check = verify_audit(site.layout)
    assert not check.ok and check.problems[0] == "audit.jsonl line 8 (entry 8) does not match audit.head"


def test_a_line_that_is_not_an_entry_is_named(site: ConsentRegistry) -> None:
    lines = lines_of(site)
    lines.insert(3, b"garbage\n")
    write_lines(site, lines)
    check = verify_audit(site.layout)
    assert not check.ok and check.first_bad_line == 4 and "line 4: not an audit entry" in check.problems[0]
    with pytest.raises(AuditLogError, match="line 4: not an audit entry"):
        read_audit(site.layout)


def test_a_torn_last_line_is_reported_and_later_appends_stay_separate(site: ConsentRegistry) -> None:
    lines = lines_of(site)
    site.layout.audit_log_path.write_bytes(b"".join(lines) + lines[-1][:40])
    append_audit(site.layout, "dataset.exported", {"dataset": "after-crash"})
    check = verify_audit(site.layout)
    assert check.first_bad_line == 9 and "line 9: not an audit entry" in check.problems[0]
    assert check.entries[-1].details == {"dataset": "after-crash"} and check.entries[-1].seq == 10


def test_registry_edits_are_caught_against_the_log(site: ConsentRegistry) -> None:
    path = site.layout.registry_path
    original = json.loads(path.read_text())

    granted_more = json.loads(json.dumps(original))
    bob = next(operator for operator in granted_more["operators"] if operator["name"] == "Bob")
    bob["consents"][0]["revoked_at"] = {}
    path.write_text(json.dumps(granted_more))
    later = T0 + timedelta(hours=4)
    assert ConsentRegistry(site.layout).check("Bob", "record", at=later).allowed, "the edit took effect..."
    result = verify_consent(site.layout)
    assert not result.ok and "differs from the audit log in revoked_at" in result.problems[0]

    swapped = json.loads(json.dumps(original))
    first, second = swapped["operators"][0], swapped["operators"][1]
    for key in ("name", "normalized_name"):
        first[key], second[key] = second[key], first[key]
    path.write_text(json.dumps(swapped))
    result = verify_consent(site.layout)
    assert not result.ok and "does not derive that pseudonym" in result.problems[0]

    forged = json.loads(json.dumps(original))
    forged["operators"][0]["consents"].append(
        dict(forged["operators"][0]["consents"][0], consent_id="c-00000000000000ff", superseded_at=None)
    )
    path.write_text(json.dumps(forged))
    result = verify_consent(site.layout)
    assert any("consent c-00000000000000ff" in problem and "never granted" in problem for problem in result.problems)

    path.write_text(json.dumps(original))
    assert verify_consent(site.layout).ok
