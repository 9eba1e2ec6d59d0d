"""The consent registry's API on real files: scopes, time, pseudonyms, the key, and where names may go."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from robot_brain.consent.audit import read_audit
from robot_brain.consent.events import append_audit
from robot_brain.consent.operators import (
    SCOPES,
    ConsentError,
    UnknownOperatorError,
    is_pseudonym,
    normalize_name,
    parse_expiry,
    parse_scopes,
    policy_operator,
    scripted_operator,
)
from robot_brain.consent.registry import ConsentDeniedError, ConsentRegistry, derive_pseudonym, verify_consent
from robot_brain.storage.files import DataFileError
from robot_brain.storage.paths import DATA_ROOT_ENV, DataLayout, resolve_data_root

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=timezone.utc)
ADA = "Ada Lovelace"
BOB = "Bob Ångström"


def days(count: float) -> datetime:
    return T0 + timedelta(days=count)


@pytest.fixture
def registry(tmp_path: Path) -> ConsentRegistry:
    return ConsentRegistry(tmp_path / "site")


def site_key(registry: ConsentRegistry) -> bytes:
    return bytes.fromhex(registry.layout.key_path.read_text().strip())


# ---- data root ---------------------------------------------------------------------------------


def test_data_root_comes_from_the_flag_then_the_environment_then_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert resolve_data_root() == tmp_path / "home/.local/share/robot_brain"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "from-env"))
    assert resolve_data_root() == tmp_path / "from-env"
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root("relative") == tmp_path / "relative"
    layout = DataLayout.resolve(tmp_path / "flag")
    assert (layout.consent_dir, layout.episodes_dir, layout.datasets_dir) == (
        tmp_path / "flag/consent",
        tmp_path / "flag/episodes",
        tmp_path / "flag/datasets",
    )
    assert not (tmp_path / "flag").exists(), "resolving a root must not create it"


# ---- enrolment, scopes, time -------------------------------------------------------------------


def test_enroll_then_check_each_scope(registry: ConsentRegistry) -> None:
    enrollment = registry.enroll(ADA, "record,train", now=T0)
    assert enrollment.new_operator and enrollment.superseded is None
    assert is_pseudonym(enrollment.operator.pseudonym) and enrollment.operator.kind == "human"
    assert enrollment.consent.scopes == ("record", "train")
    for who in (ADA, "  ada   LOVELACE ", enrollment.operator.pseudonym):
        assert registry.check(who, "record", at=days(1)).allowed
        assert registry.check(who, "train", at=days(1)).allowed
        export = registry.check(who, "export", at=days(1))
        assert not export.allowed and "does not grant 'export'" in export.reason
        assert export.consent_id == enrollment.consent.consent_id and export.scopes == ("record", "train")
    assert not registry.check(ADA, "record", at=T0 - timedelta(seconds=1)).allowed
    with pytest.raises(ConsentDeniedError, match="'export'"):
        registry.require(ADA, "export", at=days(1))
    assert registry.require(ADA, "train", at=days(1)).allowed


def test_expiry_revocation_and_renewal_are_answered_for_the_instant_asked(registry: ConsentRegistry) -> None:
    first = registry.enroll(ADA, SCOPES, expires_at=days(10), now=T0).consent
    assert registry.check(ADA, "train", at=days(9.99)).allowed
    expired = registry.check(ADA, "train", at=days(10))
    assert not expired.allowed and "expired" in expired.reason

    revocation = registry.revoke(ADA, "train", now=days(2))
    assert revocation.revoked == ("train",) and revocation.consent_id == first.consent_id
    assert registry.check(ADA, "train", at=days(1)).allowed, "an earlier instant stays consented"
    revoked = registry.check(ADA, "train", at=days(3))
    assert not revoked.allowed and "revoked" in revoked.reason
    assert registry.check(ADA, "record", at=days(3)).allowed
    assert registry.revoke(ADA, "train", now=days(3)).revoked == (), "revoking twice changes nothing"

    renewal = registry.enroll(ADA, "record", now=days(4))
    assert not renewal.new_operator and renewal.superseded == first.consent_id
    assert renewal.operator.pseudonym == first.pseudonym
    assert registry.check(ADA, "export", at=days(3)).allowed, "the old record answers for its own time"
    assert not registry.check(ADA, "export", at=days(5)).allowed, "the renewal replaced it"
    assert registry.check(ADA, "record", at=days(50)).allowed, "the renewal has no expiry"

    everything = registry.revoke(ADA, now=days(6))
    assert everything.revoked == ("record",) and set(everything.not_in_force) == {"train", "export"}
    assert not registry.check(ADA, "record", at=days(7)).allowed
    operator = registry.operator(ADA)
    assert [record.status(days(7)) for record in operator.consents] == ["superseded", "revoked"]
    with pytest.raises(ConsentError, match="a later consent"):
        registry.enroll(ADA, SCOPES, now=days(3)), "grants are never back-dated behind later ones"


def test_a_registry_object_sees_changes_made_by_another(registry: ConsentRegistry) -> None:
    registry.enroll(ADA, SCOPES)
    assert registry.check(ADA, "record").allowed
    ConsentRegistry(registry.layout.root).revoke(ADA, "record")
    assert not registry.check(ADA, "record").allowed, "a long-running reader must see a revocation"


def test_unknown_operators_bad_scopes_and_bad_dates(registry: ConsentRegistry) -> None:
    assert "no consent registry" in registry.check(ADA, "record").reason
    registry.enroll(ADA, "record", now=T0)
    unknown = registry.check("Mallory", "record")
    assert not unknown.allowed and unknown.operator is None and "Mallory" not in unknown.reason
    with pytest.raises(UnknownOperatorError) as caught:
        registry.operator("Mallory")
    assert "Mallory" not in str(caught.value)
    with pytest.raises(UnknownOperatorError):
        registry.revoke("op-0000000000000000")
    with pytest.raises(ConsentError, match="bad scope 'sell'"):
        parse_scopes("record,sell")
    with pytest.raises(ConsentError, match="no scope"):
        parse_scopes(" , ")
    with pytest.raises(ConsentError, match="bad scope"):
        registry.check(ADA, "sell")
    with pytest.raises(ConsentError, match="bad date"):
        parse_expiry("2030-02-30")
    with pytest.raises(ConsentError, match="not in the future"):
        parse_expiry("2001-01-01")
    with pytest.raises(ConsentError, match="not after the grant time"):
        registry.enroll(BOB, "record", expires_at=T0, now=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        registry.check(ADA, "record", at=datetime(2030, 1, 1))
    for not_a_name in ("", "   ", "policy:0123abcd", "scripted", "op-0123456789abcdef", "a\x00b"):
        with pytest.raises(ConsentError):
            normalize_name(not_a_name)


def test_a_date_means_through_the_end_of_that_local_day() -> None:
    assert parse_expiry("2099-01-31") == datetime(2099, 2, 1).astimezone()
    assert parse_expiry("2099-01-31T12:00:00Z") == datetime(2099, 1, 31, 12, tzinfo=timezone.utc)


def test_non_human_operators_need_no_consent_and_say_so(registry: ConsentRegistry) -> None:
    model_id = policy_operator("ab" * 32)
    assert model_id == "policy:" + "ab" * 8
    for operator, kind in ((model_id, "policy"), ("scripted", "scripted"), (scripted_operator("pick_v2"), "scripted")):
        decision = registry.check(operator, "export")
        assert decision.allowed and decision.operator is not None and decision.operator.kind == kind
        assert "non-human" in decision.reason and decision.consent_id is None
        assert decision.to_provenance()["operator_kind"] == kind
        assert registry.resolve(operator).needs_consent is False
    with pytest.raises(ConsentError, match="policy:"):
        registry.check("policy:NOT-HEX", "record")
    with pytest.raises(ConsentError, match="not a person"):
        registry.revoke("scripted")
    with pytest.raises(ConsentError, match="operator id"):
        registry.enroll(model_id, "record")
    assert not registry.layout.root.exists(), "checks and refusals write nothing"


def test_a_scripted_label_that_spells_an_enrolled_persons_name_is_refused(registry: ConsentRegistry) -> None:
    """``scripted:Ada_Lovelace`` would write a person's name into manifests, datasets and models as a label."""
    registry.enroll(ADA, "record")
    for label in ("scripted:Ada_Lovelace", "scripted:ada.lovelace", "scripted:pick-by-Ada-Lovelace"):
        decision = registry.check(label, "record")
        assert not decision.allowed and decision.operator is None, label
        assert "Ada" not in decision.reason and "Lovelace" not in decision.reason
    assert registry.check("scripted:calm_expert", "record").allowed
    assert registry.check("scripted", "record").allowed


# ---- pseudonyms and the site key ---------------------------------------------------------------


def test_pseudonym_is_the_hmac_of_the_name_stable_across_objects_and_per_site(tmp_path: Path) -> None:
    first_site, second_site = ConsentRegistry(tmp_path / "a"), ConsentRegistry(tmp_path / "b")
    pseudonym = first_site.enroll(ADA, "record").operator.pseudonym
    assert pseudonym == derive_pseudonym(site_key(first_site), normalize_name(ADA))
    assert pseudonym == "op-" + pseudonym[3:] and len(pseudonym) == 3 + 16
    assert ConsentRegistry(tmp_path / "a").resolve(ADA.upper()).pseudonym == pseudonym
    other = second_site.enroll(ADA, "record").operator.pseudonym
    assert other != pseudonym, "another site's key gives another pseudonym"
    assert site_key(first_site) != site_key(second_site)


def test_the_pseudonym_derivation_matches_a_known_answer(tmp_path: Path) -> None:
    """A fixed key and name give a fixed pseudonym: HMAC-SHA256 over the v1 context, computed outside the code."""
    registry = ConsentRegistry(tmp_path / "site")
    registry.layout.consent_dir.mkdir(parents=True, mode=0o700)
    registry.layout.key_path.write_text(bytes(range(32)).hex() + "\n", encoding="ascii")
    registry.layout.key_path.chmod(0o600)
    assert registry.enroll("  Ada   LOVELACE ", "record").operator.pseudonym == "op-b8eea15cdc1ad3e7"
    assert registry.enroll("Grace Hopper", "record").operator.pseudonym == "op-d5c1080ef4a3188c"


def test_key_file_is_0600_in_a_0700_folder_and_never_leaves_it(registry: ConsentRegistry) -> None:
    registry.enroll(ADA, SCOPES)
    key_path = registry.layout.key_path
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(registry.layout.consent_dir.stat().st_mode) == 0o700
    key_text = key_path.read_text().strip()
    assert len(key_text) == 64
    for path in registry.layout.root.rglob("*"):
        if path.is_file() and path != key_path:
            assert key_text.encode() not in path.read_bytes(), path


def test_losing_the_key_keeps_every_pseudonym_and_never_splits_a_person(registry: ConsentRegistry) -> None:
    ada = registry.enroll(ADA, SCOPES, now=T0).operator.pseudonym
    bob = registry.enroll(BOB, "record", now=T0).operator.pseudonym
    old_key = site_key(registry)
    registry.layout.key_path.unlink()

    assert registry.check(ADA, "train", at=days(1)).allowed, "checks need no key"
    assert registry.resolve(BOB).pseudonym == bob
    verification = verify_consent(registry.layout)
    assert verification.ok and any("site.key is missing" in warning for warning in verification.warnings)

    renewal = registry.enroll(ADA, "record", now=days(1))
    assert renewal.operator.pseudonym == ada and not renewal.new_operator
    assert not registry.layout.key_path.exists(), "re-enrolling a known name needs no key"

    cara = registry.enroll("Cara", "record", now=days(2))
    assert cara.new_operator and any("was missing: created a new one" in warning for warning in cara.warnings)
    new_key = site_key(registry)
    assert new_key != old_key and stat.S_IMODE(registry.layout.key_path.stat().st_mode) == 0o600
    assert cara.operator.pseudonym == derive_pseudonym(new_key, "cara")

    bob_again = registry.enroll(BOB, SCOPES, now=days(3))
    assert bob_again.operator.pseudonym == bob != derive_pseudonym(new_key, normalize_name(BOB))
    assert len(registry.operators()) == 3, "no second identity for anyone"
    created = [entry for entry in read_audit(registry.layout) if entry.kind == "key.created"]
    assert [entry.details["reason"] for entry in created] == ["first use", "key file missing"]
    assert created[1].details["lost_key_ids"] == [created[0].details["key_id"]]
    assert verify_consent(registry.layout).ok


def test_a_damaged_key_is_an_error_and_is_never_replaced(registry: ConsentRegistry) -> None:
    registry.enroll(ADA, "record")
    registry.layout.key_path.write_text("not a key\n")
    with pytest.raises(DataFileError, match=r"site\.key: expected the site key as 64 lowercase hex"):
        registry.enroll(BOB, "record")
    assert registry.layout.key_path.read_text() == "not a key\n"
    registry.layout.key_path.unlink()
    registry.layout.key_path.mkdir()
    with pytest.raises(DataFileError, match=r"site\.key: cannot read the site key"):
        registry.enroll(BOB, "record")
    assert registry.resolve(ADA).pseudonym, "what was recorded stays readable"


# ---- where names may go ------------------------------------------------------------------------


def name_forms(name: str) -> list[bytes]:
    forms = {name, name.lower(), name.upper(), normalize_name(name)}
    encoded = [form.encode() for form in forms]
    return encoded + [json.dumps(form).strip('"').encode() for form in forms]


def test_names_appear_in_no_file_but_the_registry(registry: ConsentRegistry) -> None:
    ada = registry.enroll(ADA, SCOPES, now=T0)
    registry.enroll(BOB, "record,export", expires_at=days(30), now=T0)
    registry.revoke(BOB, "export", now=days(1))
    registry.enroll(ADA, "record", now=days(2))
    registry.layout.key_path.unlink()
    registry.enroll("Cara", "record", now=days(3))
    append_audit(registry.layout, "dataset.exported", {"operators": [ada.operator.pseudonym], "episodes": 3})
    registry.forget("Cara", now=days(4))
    assert verify_consent(registry.layout).ok

    registry_path = registry.layout.registry_path
    files = [path for path in registry.layout.root.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"registry.json", "audit.jsonl", "audit.head", "site.key", ".lock"}
    assert not [path for path in files if path.name.endswith(".tmp")], "no temporary file left behind"
    for path in files:
        content = path.read_bytes()
        for name in (ADA, BOB):
            found = [form for form in name_forms(name) if form in content]
            assert (path == registry_path) == bool(found), (path, found)
        assert b"cara" not in content.lower(), f"a forgotten name stays nowhere ({path})"

    outward = [ada, registry.check(ADA, "record"), registry.revoke(BOB), registry.resolve(BOB)]
    for value in outward:
        text = repr(value) + json.dumps(getattr(value, "to_dict", lambda: {})())
        assert not any(form.decode() in text for name in (ADA, BOB) for form in name_forms(name))
    document = json.loads(registry_path.read_text())
    assert {operator["name"] for operator in document["operators"]} == {ADA, BOB, None}


def test_append_audit_refuses_clear_names_and_reserved_kinds(registry: ConsentRegistry) -> None:
    ada = registry.enroll(ADA, SCOPES).operator.pseudonym
    entry = append_audit(registry.layout, "data.purged", {"operator": ada, "episodes": ["ep-1"]})
    assert entry.kind == "data.purged" and entry.details["operator"] == ada
    for details in ({"operator": "ada lovelace"}, {"note": f"purged for {ADA.upper()}!"}, {"names": [[ADA]]}):
        with pytest.raises(ValueError, match="clear name"):
            append_audit(registry.layout, "data.purged", details)
    for kind in ("consent.granted", "key.created", "Export", "export"):
        with pytest.raises(ValueError):
            append_audit(registry.layout, kind, {})
    with pytest.raises(ValueError, match="not plain JSON"):
        append_audit(registry.layout, "data.purged", {"when": T0})
    assert [entry.kind for entry in read_audit(registry.layout)][-1] == "data.purged"
    assert verify_consent(registry.layout).ok


def test_forget_revokes_everything_and_drops_the_name(registry: ConsentRegistry) -> None:
    pseudonym = registry.enroll(ADA, SCOPES, now=T0).operator.pseudonym
    result = registry.forget(ADA, now=days(1))
    assert result.revoked == SCOPES and result.operator.pseudonym == pseudonym
    assert not registry.check(pseudonym, "record", at=days(2)).allowed
    assert registry.check(pseudonym, "record", at=days(0.5)).allowed, "history is kept"
    assert not registry.check(ADA, "record", at=days(0.5)).allowed, "the name no longer finds anyone"
    assert registry.operator(pseudonym).name is None
    # Nothing on the site re-derives the pseudonym from the name: the key that did is gone.
    assert derive_pseudonym(site_key(registry), normalize_name(ADA)) != pseudonym
    again = registry.enroll(ADA, "record", now=days(3))
    assert again.operator.pseudonym != pseudonym and again.new_operator, "a forgotten person is not re-linked"
    assert verify_consent(registry.layout).ok


def test_after_forget_swapped_names_of_the_others_are_still_caught(registry: ConsentRegistry) -> None:
    """The key rotation of a forget must not blind verify: the remaining names are bound under the new key."""
    registry.enroll(ADA, "record", now=T0)
    registry.enroll(BOB, "record", now=T0)
    registry.enroll("Carol Shaw", "record", now=T0)
    registry.forget("Carol Shaw", now=days(1))
    assert verify_consent(registry.layout).ok
    path = registry.layout.registry_path
    document = json.loads(path.read_text(encoding="utf-8"))
    named = [entry for entry in document["operators"] if entry["name"]]
    named[0]["name"], named[1]["name"] = named[1]["name"], named[0]["name"]
    named[0]["normalized_name"], named[1]["normalized_name"] = named[1]["normalized_name"], named[0]["normalized_name"]
    path.write_text(json.dumps(document), encoding="utf-8")
    result = verify_consent(registry.layout)
    assert not result.ok and any("does not derive that pseudonym" in problem for problem in result.problems)


# ---- bad files ---------------------------------------------------------------------------------


def test_a_corrupt_registry_is_a_one_line_error_naming_it_and_nothing_is_overwritten(
    registry: ConsentRegistry,
) -> None:
    registry.enroll(ADA, SCOPES)
    path = registry.layout.registry_path
    damaged = path.read_text()[:-40]
    path.write_text(damaged)
    for call in (lambda: registry.check(ADA, "record"), lambda: registry.enroll(BOB, "record"), registry.operators):
        with pytest.raises(DataFileError) as caught:
            call()
        assert str(registry.layout.registry_path) in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_text() == damaged
    path.write_text('{"format": "something else"}')
    with pytest.raises(DataFileError, match="expected a consent registry"):
        registry.operators()


def test_a_deleted_registry_is_not_silently_restarted(registry: ConsentRegistry) -> None:
    registry.enroll(ADA, SCOPES)
    registry.layout.registry_path.unlink()
    with pytest.raises(DataFileError, match="restore it from a backup"):
        registry.check(ADA, "record")
    with pytest.raises(DataFileError, match="restore it from a backup"):
        registry.enroll(BOB, "record")
    assert not registry.layout.registry_path.exists()
