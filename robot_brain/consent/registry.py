"""The consent registry: who may be recorded, trained on and exported, under which pseudonym.

Nothing about a person is recorded without consent, and a person's name never leaves this
registry. The registry lives in ``<data root>/consent/`` (mode 0700)::

    registry.json   operators (clear name, pseudonym) and their consent records: the ONLY file with names
    site.key        the per-site HMAC key (64 hex digits, mode 0600), never printed or logged
    audit.jsonl     the hash-chained audit log (see robot_brain.consent.audit): pseudonyms only
    audit.head      the last audit entry's number and hash
    .lock           fcntl lock serialising all writers

**Pseudonyms.** A person's pseudonym is ``op-`` + the first 16 hex digits of
HMAC-SHA256(site key, ``"robot_brain.operator.v1\\0"`` + normalised name). Without the key,
nobody can test a guessed name against a pseudonym found in a dataset. The normalised name is
NFKC, case-folded, with whitespace collapsed: "Ada  Lovelace" and "ada lovelace" are one person.

**The stored table is the truth, not the key.** A pseudonym is derived once, at a person's
first enrolment, and stored beside the name. Every later look-up (by name or by pseudonym)
goes through that table, so pseudonyms already written into episodes and datasets never
change. If ``site.key`` is lost, nothing recorded is affected: checks and revocations need no
key; known names (re-enrolled or not) keep their stored pseudonym, so a known person never gets
a second identity; only a person enrolled for the first time after the loss needs the key, at
which point a new one is created, with a warning (log and CLI) and a ``key.created`` audit entry
naming the lost key's id. A key file that exists but cannot be read is an error, never replaced.
Which key derived each pseudonym is stored (``key_id``, a fingerprint, not the key), and each
name is bound to its entry by ``name_check`` (an HMAC under the current key): ``consent verify``
re-derives every pseudonym whose key is present and checks every binding, so swapping names
between pseudonyms in ``registry.json`` is detected, also after a key rotation.

**Consent records.** Enrolling creates a consent record (``c-`` + 16 hex): scopes (``record``,
``train``, ``export``), the grant time and an optional expiry. Enrolling a known operator again
supersedes the record in force (at that instant), so at most one record is in force at any time
and ``check`` answers for the instant asked: expiry, revocation and supersession are honoured
as of ``at``. Revoking marks scopes revoked at an instant; records are never deleted (the
history is the evidence). ``forget`` (right to erasure) revokes everything, drops the name,
keeping the pseudonym's history, and retires the site key (``key.rotated``): afterwards nothing
on the site re-derives that pseudonym from the name, and the same name enrolled again is a new
operator.

**Legal basis, retention, objection** (:mod:`robot_brain.consent.legal`). Each consent record
carries the enrolment's legal basis (``consent``, ``collective_agreement`` with the agreement's
reference, ``legitimate_interest``) and a retention period in days; a record written before
these were recorded reads as ``consent`` with no period (``verify`` warns). :meth:`~ConsentRegistry.check_episode`
is :meth:`~ConsentRegistry.check` for recorded data: an episode recorded longer ago than its
period is refused like a withdrawn consent (export and training use it;
``robot-brain data purge --expired`` erases such episodes). :meth:`~ConsentRegistry.object`
(an objection, or an opt-out) is :meth:`~ConsentRegistry.revoke` of every scope, through the
same code, logged as ``consent.objected`` with the basis.

**Non-human operators** ``policy:<8-64 hex of the model's SHA-256>``, ``scripted`` and
``scripted:<name>`` need no consent: ``check`` allows them with a reason saying so, and their
:class:`OperatorRef` has ``kind`` ``policy``/``scripted`` so every artefact labels them.

**For other modules** (recorder, episode store, exporter, trainer, purge): use
:meth:`ConsentRegistry.check` / :meth:`~ConsentRegistry.require` / :meth:`~ConsentRegistry.resolve`,
and store what :class:`Decision` / :class:`OperatorRef` / :class:`ConsentRecord` give you
(``to_provenance()``, ``to_dict()``): none of them carries a name. Only
:class:`EnrolledOperator` (from ``operator()``/``operators()``, for the local CLI) has the name.

**Safety.** Every change runs under one fcntl lock: read the registry, append the audit entry
(fsync'ed), then replace ``registry.json`` atomically. The audit entry comes first so a crash
in between leaves a logged consent that is not in force (safe, and reported by verify), never
a consent in force that was not logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from robot_brain.consent.audit import AuditCheck, AuditEntry, append_entry_locked, refuse_clear_names, verify_audit
from robot_brain.consent.legal import (
    LEGACY_LEGAL_BASIS,
    LEGAL_BASES,
    MAX_RETENTION_DAYS,
    OBJECTION_MEANING,
    parse_agreement,
    parse_legal_basis,
    parse_retention_days,
    retention_end,
)
from robot_brain.consent.operators import (
    PSEUDONYM_HEX_DIGITS,
    PSEUDONYM_PREFIX,
    SCOPES,
    ConsentError,
    OperatorKind,
    UnknownOperatorError,
    is_pseudonym,
    non_human_kind,
    normalize_name,
    normalize_text,
    parse_scopes,
    require_scope,
)
from robot_brain.storage.files import (
    DataFileError,
    atomic_write_bytes,
    atomic_write_json,
    create_secret_file,
    exclusive_lock,
    read_json_file,
)
from robot_brain.storage.paths import CONSENT_DIR_MODE, DataLayout
from robot_brain.storage.times import format_time, parse_time, require_aware, utc_now

_log = logging.getLogger(__name__)


REGISTRY_FORMAT = "robot_brain.consent.registry/1"
_HMAC_CONTEXT = b"robot_brain.operator.v1\0"
_KEY_ID_CONTEXT = b"robot_brain.site-key-id.v1\0"
_NAME_CHECK_CONTEXT = b"robot_brain.name-check.v1\0"
_KEY_BYTES = 32
_CONSENT_ID_PATTERN = re.compile(r"c-[0-9a-f]{16}")


class ConsentDeniedError(ConsentError):
    """Raised by :meth:`ConsentRegistry.require`; ``decision`` says why (no name in it)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"no '{decision.scope}' consent: {decision.reason}")
        self.decision = decision


# --------------------------------------------------------------------------------------------
# What leaves the registry (no names) and what stays local (with the name)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorRef:
    """An operator as artefacts name it: pseudonym and kind, never a name. Safe to store anywhere."""

    pseudonym: str
    """``op-<16 hex>`` for a person, else the non-human id (``policy:…``, ``scripted``, ``scripted:…``)."""
    kind: OperatorKind

    @property
    def needs_consent(self) -> bool:
        return self.kind == "human"

    def to_dict(self) -> dict[str, Any]:
        return {"pseudonym": self.pseudonym, "kind": self.kind}


@dataclass(frozen=True)
class ConsentRecord:
    """One consent given by one operator (by pseudonym). Safe to store anywhere: no name."""

    consent_id: str
    pseudonym: str
    scopes: tuple[str, ...]
    granted_at: datetime
    expires_at: datetime | None = None
    revoked_at: Mapping[str, datetime] = field(default_factory=dict)
    """Scope → instant it was revoked (from then on it is not granted)."""
    superseded_at: datetime | None = None
    """When a later enrolment replaced this record (it is not in force from then on)."""
    superseded_by: str | None = None
    legal_basis: str = LEGACY_LEGAL_BASIS
    """``consent``, ``collective_agreement`` or ``legitimate_interest`` (see :mod:`robot_brain.consent.legal`);
    a record written before legal bases were recorded reads as ``consent``."""
    agreement: str | None = None
    """The collective agreement's reference (``collective_agreement`` only)."""
    retention_days: int | None = None
    """Episodes recorded under this record expire this many days after recording (``None``: a record
    written before retention periods were recorded; no automatic expiry)."""
    objected_at: datetime | None = None
    """When the operator objected (or opted out): the scopes in force then were revoked at that instant."""

    @property
    def ends_at(self) -> datetime | None:
        """The first instant this record is no longer in force (expiry or supersession), if any."""
        ends = [moment for moment in (self.expires_at, self.superseded_at) if moment is not None]
        return min(ends) if ends else None

    def in_force(self, at: datetime) -> bool:
        """Granted at or before ``at`` and neither expired nor superseded at ``at``."""
        moment = require_aware(at)
        end = self.ends_at
        return self.granted_at <= moment and (end is None or moment < end)

    def scopes_at(self, at: datetime) -> tuple[str, ...]:
        """The scopes this record grants at ``at`` (empty when it is not in force)."""
        moment = require_aware(at)
        if not self.in_force(moment):
            return ()
        return tuple(scope for scope in self.scopes if scope not in self.revoked_at or self.revoked_at[scope] > moment)

    def status(self, at: datetime) -> str:
        """``active``, ``revoked`` (in force, every scope revoked), ``expired``, ``superseded`` or ``pending``."""
        moment = require_aware(at)
        if moment < self.granted_at:
            return "pending"
        if self.in_force(moment):
            return "active" if self.scopes_at(moment) else "revoked"
        if self.superseded_at is not None and (self.expires_at is None or self.superseded_at <= self.expires_at):
            return "superseded"
        return "expired"

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "pseudonym": self.pseudonym,
            "scopes": list(self.scopes),
            "granted_at": format_time(self.granted_at),
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "revoked_at": {scope: format_time(moment) for scope, moment in sorted(self.revoked_at.items())},
            "superseded_at": format_time(self.superseded_at) if self.superseded_at else None,
            "superseded_by": self.superseded_by,
            "legal_basis": self.legal_basis,
            "agreement": self.agreement,
            "retention_days": self.retention_days,
            "objected_at": format_time(self.objected_at) if self.objected_at else None,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ConsentRecord:
        """Inverse of :meth:`to_dict`; ``ValueError``/``KeyError``/``TypeError`` on a malformed one."""
        consent_id = str(document["consent_id"])
        if not _CONSENT_ID_PATTERN.fullmatch(consent_id):
            raise ValueError(f"consent id {consent_id!r} is not c-<16 hex>")
        scopes = tuple(document["scopes"])
        if not scopes or any(scope not in SCOPES for scope in scopes):
            raise ValueError(f"consent {consent_id}: scopes {list(scopes)!r} are not a subset of {list(SCOPES)}")
        revoked = document.get("revoked_at") or {}
        if any(scope not in SCOPES for scope in revoked):
            raise ValueError(f"consent {consent_id}: revoked scopes {sorted(revoked)!r} unknown")

        def optional_time(key: str) -> datetime | None:
            value = document.get(key)
            return parse_time(value) if value is not None else None

        basis = document.get("legal_basis", LEGACY_LEGAL_BASIS)
        if basis not in LEGAL_BASES:
            raise ValueError(f"consent {consent_id}: legal basis {basis!r} is not one of {list(LEGAL_BASES)}")
        agreement = document.get("agreement")
        if (basis == "collective_agreement") != isinstance(agreement, str):
            raise ValueError(f"consent {consent_id}: an agreement reference goes with collective_agreement only")
        retention = document.get("retention_days")
        if retention is not None and (
            isinstance(retention, bool) or not isinstance(retention, int) or not 1 <= retention <= MAX_RETENTION_DAYS
        ):
            raise ValueError(f"consent {consent_id}: retention_days {retention!r} is not 1 to {MAX_RETENTION_DAYS}")
        return cls(
            consent_id=consent_id,
            pseudonym=str(document["pseudonym"]),
            scopes=scopes,
            granted_at=parse_time(document["granted_at"]),
            expires_at=optional_time("expires_at"),
            revoked_at={scope: parse_time(moment) for scope, moment in revoked.items()},
            superseded_at=optional_time("superseded_at"),
            superseded_by=document.get("superseded_by"),
            legal_basis=basis,
            agreement=agreement,
            retention_days=retention,
            objected_at=optional_time("objected_at"),
        )


@dataclass(frozen=True)
class Decision:
    """The answer of :meth:`ConsentRegistry.check`. Carries no name: safe to log and store.

    ``reason`` is one readable line (no name, no key). ``scopes`` are every scope granted at
    ``at`` (all of them for non-human operators), so a caller can store them as provenance.
    """

    allowed: bool
    scope: str
    reason: str
    at: datetime
    operator: OperatorRef | None
    """``None`` when the operator is unknown."""
    consent_id: str | None = None
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    legal_basis: str | None = None
    """Of the record in force (``None``: non-human operator, or nothing in force)."""
    agreement: str | None = None
    retention_days: int | None = None
    """The retention applied (:meth:`ConsentRegistry.check_episode`), else that of the record in force."""
    retention_ends_at: datetime | None = None
    """When the episode checked by :meth:`ConsentRegistry.check_episode` expires (``None``: not asked, or no period)."""
    retention_expired: bool = False
    """The refusal is the episode's retention period being over (treated as withdrawn consent)."""

    @property
    def pseudonym(self) -> str | None:
        return self.operator.pseudonym if self.operator else None

    def to_provenance(self) -> dict[str, Any]:
        """The consent part of an episode's or dataset's provenance (JSON-ready, no name)."""
        return {
            "operator": self.pseudonym,
            "operator_kind": self.operator.kind if self.operator else None,
            "consent_id": self.consent_id,
            "consent_scopes": list(self.scopes),
            "consent_expires_at": format_time(self.expires_at) if self.expires_at else None,
            "consent_checked_scope": self.scope,
            "consent_checked_at": format_time(self.at),
            "consent_allowed": self.allowed,
            "consent_reason": self.reason,
            "consent_legal_basis": self.legal_basis,
            "consent_agreement": self.agreement,
            "consent_retention_days": self.retention_days,
            "retention_ends_at": format_time(self.retention_ends_at) if self.retention_ends_at else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.to_provenance()


@dataclass(frozen=True)
class EnrolledOperator:
    """An operator as the registry holds it, **clear name included**: for the local site user
    (``consent list``/``show``) only. Never store it in an episode, a dataset, a model or a log:
    pass :attr:`ref` or a :class:`ConsentRecord` instead."""

    pseudonym: str
    name: str | None
    """The clear name as enrolled; ``None`` once forgotten."""
    normalized_name: str | None
    key_id: str
    """Fingerprint of the site key that derived the pseudonym (not the key)."""
    enrolled_at: datetime
    consents: tuple[ConsentRecord, ...]
    """Oldest first."""
    forgotten_at: datetime | None = None
    name_check: str | None = None
    """HMAC of the normalised name under the key ``name_check_key_id``: after a key rotation the
    pseudonym no longer derives from the name, and this still lets ``verify`` catch swapped names."""
    name_check_key_id: str | None = None

    @property
    def ref(self) -> OperatorRef:
        return OperatorRef(self.pseudonym, "human")

    def consent_at(self, at: datetime) -> ConsentRecord | None:
        """The record in force at ``at`` (at most one), or ``None``."""
        moment = require_aware(at)
        for record in reversed(self.consents):
            if record.in_force(moment):
                return record
        return None

    def to_local_dict(self, at: datetime | None = None) -> dict[str, Any]:
        """JSON for the local CLI, **with the name**; ``at`` (default now) picks what is in force."""
        moment = require_aware(at) if at is not None else utc_now()
        current = self.consent_at(moment)
        return {
            "pseudonym": self.pseudonym,
            "name": self.name,
            "kind": "human",
            "key_id": self.key_id,
            "enrolled_at": format_time(self.enrolled_at),
            "forgotten_at": format_time(self.forgotten_at) if self.forgotten_at else None,
            "consent_id": current.consent_id if current else None,
            "scopes_now": list(current.scopes_at(moment)) if current else [],
            "expires_at": format_time(current.expires_at) if current and current.expires_at else None,
            "legal_basis": current.legal_basis if current else None,
            "agreement": current.agreement if current else None,
            "retention_days": current.retention_days if current else None,
            "consents": [dict(record.to_dict(), status=record.status(moment)) for record in self.consents],
        }

    def _to_stored(self) -> dict[str, Any]:
        return {
            "pseudonym": self.pseudonym,
            "name": self.name,
            "normalized_name": self.normalized_name,
            "key_id": self.key_id,
            "enrolled_at": format_time(self.enrolled_at),
            "forgotten_at": format_time(self.forgotten_at) if self.forgotten_at else None,
            "consents": [record.to_dict() for record in self.consents],
            "name_check": self.name_check,
            "name_check_key_id": self.name_check_key_id,
        }


@dataclass(frozen=True)
class Enrollment:
    """What :meth:`ConsentRegistry.enroll` did (no name)."""

    operator: OperatorRef
    consent: ConsentRecord
    new_operator: bool
    """False when the name was already enrolled (the stored pseudonym was reused)."""
    superseded: str | None
    """Consent id of the record this one replaced, if one was in force."""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Revocation:
    """What :meth:`ConsentRegistry.revoke` did (no name)."""

    operator: OperatorRef
    consent_id: str | None
    """The record in force whose scopes were revoked (``None``: none was in force)."""
    revoked: tuple[str, ...]
    """Scopes revoked by this call (empty: nothing changed, nothing logged)."""
    not_in_force: tuple[str, ...]
    """Requested scopes that were not granted at that instant anyway."""
    at: datetime


@dataclass(frozen=True)
class ConsentVerification:
    """What :func:`verify_consent` found: the audit chain, and the registry against the log."""

    audit: AuditCheck
    problems: tuple[str, ...]
    """Tampering or damage, most important first (the audit chain's first bad entry leads)."""
    warnings: tuple[str, ...]
    operators: int
    consents: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "audit_log": str(self.audit.path),
            "entries": self.audit.lines,
            "head_sha256": self.audit.head_sha256,
            "first_bad_line": self.audit.first_bad_line,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "notes": list(self.audit.notes),
            "operators": self.operators,
            "consents": self.consents,
        }


# --------------------------------------------------------------------------------------------
# The stored registry
# --------------------------------------------------------------------------------------------


@dataclass
class _State:
    """The parsed ``registry.json`` (``exists`` false: no file yet)."""

    exists: bool = False
    key_ids: list[str] = field(default_factory=list)
    operators: dict[str, EnrolledOperator] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)

    def find(self, operator: str) -> EnrolledOperator | None:
        """By exact pseudonym first, then by normalised name."""
        if operator in self.operators:
            return self.operators[operator]
        normalized = normalize_text(operator)
        if not normalized:
            return None
        pseudonym = self.by_name.get(normalized)
        return self.operators.get(pseudonym) if pseudonym else None

    def put(self, operator: EnrolledOperator) -> None:
        previous = self.operators.get(operator.pseudonym)
        if previous is not None and previous.normalized_name:
            self.by_name.pop(previous.normalized_name, None)
        self.operators[operator.pseudonym] = operator
        if operator.normalized_name:
            self.by_name[operator.normalized_name] = operator.pseudonym

    def to_document(self) -> dict[str, Any]:
        return {
            "format": REGISTRY_FORMAT,
            "key_ids": list(self.key_ids),
            "operators": [self.operators[key]._to_stored() for key in sorted(self.operators)],
        }


def _parse_registry(path: Path, document: Any) -> _State:
    def bad(found: str) -> DataFileError:
        return DataFileError(f"{path}: expected a consent registry ({REGISTRY_FORMAT}), found {found}")

    if not isinstance(document, dict):
        raise bad(type(document).__name__)
    if document.get("format") != REGISTRY_FORMAT:
        raise bad(f"format {document.get('format')!r}")
    state = _State(exists=True, key_ids=[str(key_id) for key_id in document.get("key_ids", [])])
    operators = document.get("operators")
    if not isinstance(operators, list):
        raise bad("no operators list")
    for index, item in enumerate(operators):
        try:
            pseudonym = str(item["pseudonym"])
            if not is_pseudonym(pseudonym):
                raise ValueError(f"pseudonym {pseudonym!r} is not op-<16 hex>")
            consents = tuple(ConsentRecord.from_dict(record) for record in item["consents"])
            if any(record.pseudonym != pseudonym for record in consents):
                raise ValueError("a consent record names another pseudonym")
            operator = EnrolledOperator(
                pseudonym=pseudonym,
                name=item["name"],
                normalized_name=item["normalized_name"],
                key_id=str(item["key_id"]),
                enrolled_at=parse_time(item["enrolled_at"]),
                consents=consents,
                forgotten_at=parse_time(item["forgotten_at"]) if item.get("forgotten_at") else None,
                name_check=item.get("name_check"),
                name_check_key_id=item.get("name_check_key_id"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise bad(f"a malformed operator entry #{index + 1} ({type(error).__name__}: {error})") from error
        if pseudonym in state.operators:
            raise bad(f"operator entry #{index + 1} repeats a pseudonym")
        if operator.normalized_name and operator.normalized_name in state.by_name:
            raise bad(f"operator entry #{index + 1} repeats the name of another entry")
        state.put(operator)
    return state


def _key_id(key: bytes) -> str:
    return "k-" + hashlib.sha256(_KEY_ID_CONTEXT + key).hexdigest()[:12]


def derive_pseudonym(key: bytes, normalized_name: str) -> str:
    """``op-`` + the first 16 hex digits of HMAC-SHA256(key, context + normalised name)."""
    digest = hmac.new(key, _HMAC_CONTEXT + normalized_name.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_DIGITS]


def name_check(key: bytes, normalized_name: str) -> str:
    """HMAC-SHA256(key, name-check context + normalised name), hex: binds a stored name to its entry."""
    return hmac.new(key, _NAME_CHECK_CONTEXT + normalized_name.encode("utf-8"), hashlib.sha256).hexdigest()


def _name_matches(operator: EnrolledOperator, key: bytes, key_id: str) -> bool:
    """Whether ``operator``'s stored name is bound to it under ``key``, where anything binds it (True otherwise)."""
    assert operator.normalized_name is not None
    if operator.name_check_key_id == key_id and operator.name_check is not None:
        return hmac.compare_digest(operator.name_check, name_check(key, operator.normalized_name))
    if operator.key_id == key_id:
        return derive_pseudonym(key, operator.normalized_name) == operator.pseudonym
    return True  # enrolled under a key that is gone, with no check under this one: nothing to compare


def _read_key(path: Path) -> bytes | None:
    """The site key, ``None`` when the file does not exist; an unreadable one is an error."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataFileError(
            f"{path}: cannot read the site key ({error.strerror or error}); it is not replaced automatically"
        ) from error
    stripped = text.strip()
    if not re.fullmatch(rb"[0-9a-f]{64}", stripped):
        raise DataFileError(
            f"{path}: expected the site key as 64 lowercase hex digits, found {len(stripped)} other bytes; "
            "restore it from a backup or move it away (a new key is then created)"
        )
    return bytes.fromhex(stripped.decode("ascii"))


def _key_mode_warning(path: Path) -> str | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return f"{path} has mode {mode:04o}: expected 0600 (chmod 600 {path})"
    return None


def _retention_of(
    operator: EnrolledOperator, recorded: datetime, consent_id: str | None, moment: datetime
) -> tuple[int | None, str | None]:
    """(days, consent id) of the retention that governs an episode of ``operator`` recorded at ``recorded``.

    The record it was recorded under (by ``consent_id``, else the one in force at ``recorded``,
    else the first one granted after it) and the record in force at ``moment``: the shorter
    period of the two wins; a record without a period (written before they were recorded)
    imposes none. ``(None, None)`` when no record has one.
    """
    by_id = {record.consent_id: record for record in operator.consents}
    recorded_under = by_id.get(consent_id) if consent_id else None
    if recorded_under is None:
        recorded_under = operator.consent_at(recorded) or next(
            (record for record in operator.consents if record.granted_at >= recorded), None
        )
    candidates = [record for record in (recorded_under, operator.consent_at(moment)) if record is not None]
    periods = [(record.retention_days, record.consent_id) for record in candidates if record.retention_days]
    if not periods:
        return None, None
    return min(periods)


def registered_names_locked(layout: DataLayout) -> list[str]:
    """Normalised names of enrolled operators, for the audit log's name guard (caller holds the lock)."""
    if not layout.registry_path.exists():
        return []
    state = _parse_registry(layout.registry_path, read_json_file(layout.registry_path, what="the consent registry"))
    return sorted(state.by_name)


class ConsentRegistry:
    """The consent registry of one data root.

    Cheap to create; reads ``registry.json`` lazily and again whenever the file changed (a
    long-running recorder sees a revocation made with the CLI at its next ``check``). Writers
    (``enroll``, ``revoke``, ``forget``) lock, re-read, log and replace the file atomically, so
    several processes may share a data root. Thread-safe for the same reasons.
    """

    def __init__(self, data_root: str | os.PathLike[str] | DataLayout | None = None) -> None:
        self.layout = DataLayout.resolve(data_root)
        self.warnings: list[str] = []
        """Warnings of this object's calls (a new key after a lost one, a key file readable by others)."""
        self._cache: tuple[tuple[int, ...], _State] | None = None

    # ---- reading -----------------------------------------------------------------------------

    def _load(self, *, fresh: bool = False) -> _State:
        """The registry as stored. Readers share a cached copy (never mutate it); writers pass
        ``fresh`` and get a private one, so a failed write never leaves unsaved changes in memory."""
        path = self.layout.registry_path
        try:
            info = path.stat()
        except FileNotFoundError:
            self._refuse_lost_registry()
            return _State()
        except OSError as error:
            raise DataFileError(f"{path}: cannot read the consent registry: {error.strerror or error}") from error
        signature = (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if not fresh and self._cache is not None and self._cache[0] == signature:
            return self._cache[1]
        state = _parse_registry(path, read_json_file(path, what="the consent registry"))
        if not fresh:
            self._cache = (signature, state)
        return state

    def _refuse_lost_registry(self) -> None:
        """A missing registry with consents in the audit log was deleted: never start afresh silently."""
        log = self.layout.audit_log_path
        try:
            with open(log, "rb") as stream:
                granted = any(b'"kind":"consent.granted"' in line for line in stream)
        except FileNotFoundError:
            return
        except OSError as error:
            raise DataFileError(f"cannot read the audit log {log}: {error.strerror or error}") from error
        if granted:
            raise DataFileError(
                f"{self.layout.registry_path}: expected the consent registry, found no file although {log.name} "
                "records consents; restore it from a backup (or move the consent folder away to start afresh)"
            )

    def exists(self) -> bool:
        """Whether a registry file exists (no operator was ever enrolled otherwise)."""
        return self._load().exists

    def operators(self) -> list[EnrolledOperator]:
        """Every enrolled operator (local view, **with names**), ordered by enrolment time."""
        return sorted(self._load().operators.values(), key=lambda operator: (operator.enrolled_at, operator.pseudonym))

    def operator(self, operator: str) -> EnrolledOperator:
        """The enrolled operator (local view, **with name**) by name or pseudonym.

        :class:`UnknownOperatorError` when there is none (its message never repeats a name).
        """
        found = self._load().find(operator)
        if found is None:
            raise self._unknown(operator)
        return found

    def resolve(self, operator: str) -> OperatorRef:
        """The :class:`OperatorRef` (no name) of a name, a pseudonym or a non-human id.

        Unknown people are an :class:`UnknownOperatorError`; non-human ids always resolve.
        """
        kind = non_human_kind(operator)
        if kind is not None:
            return OperatorRef(operator, kind)
        return self.operator(operator).ref

    def consent(self, consent_id: str) -> ConsentRecord:
        """A consent record by id; ``ConsentError`` when there is none."""
        for operator in self._load().operators.values():
            for record in operator.consents:
                if record.consent_id == consent_id:
                    return record
        raise ConsentError(f"unknown consent id '{consent_id}' in {self.layout.registry_path}")

    def _unknown(self, operator: str) -> UnknownOperatorError:
        shown = f"'{operator}'" if is_pseudonym(operator) else "under that name"
        return UnknownOperatorError(
            f"unknown operator: no one is enrolled {shown} in {self.layout.registry_path} "
            "(see `robot-brain consent list`)"
        )

    def check(self, operator: str | OperatorRef, scope: str, *, at: datetime | None = None) -> Decision:
        """May ``operator`` (name, pseudonym or non-human id) be used for ``scope`` at ``at`` (default now)?

        Never raises for an unknown operator (the decision is a refusal); a bad scope or a
        malformed non-human id is a :class:`ConsentError`; a corrupt registry a ``DataFileError``.
        """
        require_scope(scope)
        if isinstance(operator, OperatorRef):
            operator = operator.pseudonym
        moment = require_aware(at, "at") if at is not None else utc_now()
        kind = non_human_kind(operator)
        if kind == "scripted" and self._names_a_person(operator):
            return Decision(
                False, scope, "a scripted operator's name holds an enrolled person's name: a person is never a label",
                moment, None,
            )
        if kind is not None:
            return Decision(
                allowed=True,
                scope=scope,
                reason=f"non-human operator ({kind}): no consent needed",
                at=moment,
                operator=OperatorRef(operator, kind),
                scopes=SCOPES,
            )
        state = self._load()
        if not state.exists:
            return Decision(False, scope, f"no consent registry at {self.layout.registry_path}", moment, None)
        found = state.find(operator)
        if found is None:
            return Decision(
                False, scope, "unknown operator: no one is enrolled under that name or pseudonym", moment, None
            )
        return self._decide(found, scope, moment)

    def _names_a_person(self, operator: str) -> bool:
        """Whether ``scripted:<name>`` spells an enrolled person's name (``_``, ``.`` and ``-`` read as spaces)."""
        label = operator.partition(":")[2]
        if not label:
            return False
        state = self._load()
        if not state.exists:
            return False
        try:
            refuse_clear_names({"operator": re.sub(r"[_.-]+", " ", label)}, sorted(state.by_name))
        except ValueError:
            return True
        return False

    @staticmethod
    def _decide(operator: EnrolledOperator, scope: str, moment: datetime) -> Decision:
        record = operator.consent_at(moment)
        if record is None:
            earlier = [consent for consent in operator.consents if consent.granted_at <= moment]
            if not operator.consents or not earlier:
                first = f": first granted {format_time(operator.consents[0].granted_at)}" if operator.consents else ""
                reason = f"no consent in force at {format_time(moment)}{first}"
            else:
                latest = earlier[-1]
                ended = f" at {format_time(latest.ends_at)}" if latest.ends_at else ""
                reason = f"consent {latest.consent_id} {latest.status(moment)}{ended}"
            return Decision(False, scope, reason, moment, operator.ref)
        granted = record.scopes_at(moment)
        common = {"at": moment, "operator": operator.ref, "consent_id": record.consent_id, "scopes": granted}
        common.update(expires_at=record.expires_at, legal_basis=record.legal_basis, agreement=record.agreement,
                      retention_days=record.retention_days)
        if scope in granted:
            until = f" until {format_time(record.expires_at)}" if record.expires_at else ""
            return Decision(True, scope, f"consent {record.consent_id} grants '{scope}'{until}", **common)
        if scope in record.scopes:
            revoked_at = record.revoked_at[scope]
            objected = (
                f" ({OBJECTION_MEANING[record.legal_basis]})" if record.objected_at == revoked_at else ""
            )
            return Decision(
                False, scope,
                f"'{scope}' of consent {record.consent_id} was revoked at {format_time(revoked_at)}{objected}",
                **common,
            )
        grants = ", ".join(granted) or "nothing"
        return Decision(
            False, scope, f"consent {record.consent_id} does not grant '{scope}' (grants {grants})", **common
        )

    def require(self, operator: str | OperatorRef, scope: str, *, at: datetime | None = None) -> Decision:
        """:meth:`check`, raising :class:`ConsentDeniedError` (a ``UserError``) when not allowed."""
        decision = self.check(operator, scope, at=at)
        if not decision.allowed:
            raise ConsentDeniedError(decision)
        return decision

    def check_episode(
        self,
        operator: str | OperatorRef,
        scope: str,
        *,
        recorded_at: datetime | str | None,
        consent_id: str | None = None,
        at: datetime | None = None,
    ) -> Decision:
        """:meth:`check` for data already recorded: also refused once the episode's retention period is over.

        ``recorded_at``: when the episode started (a datetime or its manifest's ``start_time``);
        ``consent_id``: the consent it was recorded under (the manifest's ``consent.id``). The
        period is the shorter of that record's and the one in force at ``at`` (see
        :mod:`robot_brain.consent.legal`). An expired episode is refused exactly as a withdrawn
        consent is (``allowed`` false, ``retention_expired`` true, the reason says so). A person's
        episode whose recording time is unknown is refused: its retention cannot be checked.
        Non-human operators have no retention.
        """
        decision = self.check(operator, scope, at=at)
        if decision.operator is None or not decision.operator.needs_consent or not decision.allowed:
            return decision  # a refusal stays the refusal it is (revoked, expired consent, ...)
        moment = decision.at
        if recorded_at is None:
            return replace(decision, allowed=False,
                           reason="the episode's recording time is unknown: its retention period cannot be checked")
        try:
            recorded = parse_time(recorded_at) if isinstance(recorded_at, str) else require_aware(recorded_at)
        except (TypeError, ValueError):
            return replace(decision, allowed=False,
                           reason=f"the episode's recording time {recorded_at!r} is not a time: its retention "
                           "period cannot be checked")
        found = self._load().find(decision.operator.pseudonym)
        if found is None:
            return decision
        days, governing = _retention_of(found, recorded, consent_id, moment)
        if days is None:
            return replace(decision, retention_days=None)
        ends = retention_end(recorded, days)
        if moment < ends:
            return replace(decision, retention_days=days, retention_ends_at=ends)
        return replace(
            decision,
            allowed=False,
            retention_days=days,
            retention_ends_at=ends,
            retention_expired=True,
            reason=(
                f"retention period over: recorded {format_time(recorded)}, kept {days} days under consent "
                f"{governing}, expired {format_time(ends)} (treated as withdrawn consent)"
            ),
        )

    def retention(
        self, operator: str, *, recorded_at: datetime, consent_id: str | None = None, at: datetime | None = None
    ) -> tuple[int, datetime] | None:
        """(retention days, expiry instant) of a person's episode, ``None`` when no period applies.

        ``None`` for a non-human or unknown operator and for records written before retention
        periods were recorded. Expired when ``at`` (default now) is at or after the instant.
        """
        if non_human_kind(operator) is not None:
            return None
        found = self._load().find(operator)
        if found is None:
            return None
        recorded = require_aware(recorded_at, "recorded_at")
        moment = require_aware(at, "at") if at is not None else utc_now()
        days, _ = _retention_of(found, recorded, consent_id, moment)
        return None if days is None else (days, retention_end(recorded, days))

    # ---- writing -----------------------------------------------------------------------------

    def _begin_write(self) -> None:
        consent_dir = self.layout.ensure(self.layout.consent_dir, CONSENT_DIR_MODE)
        mode = stat.S_IMODE(consent_dir.stat().st_mode)
        if mode & 0o077:
            self._warn(f"{consent_dir} has mode {mode:04o}: expected 0700 (it holds names and the site key)")

    def _warn(self, message: str) -> None:
        _log.warning("%s", message)
        self.warnings.append(message)

    def _write(self, state: _State) -> None:
        atomic_write_json(self.layout.registry_path, state.to_document(), mode=0o600)
        self._cache = None

    def _site_key_locked(self, state: _State, moment: datetime) -> tuple[bytes, str]:
        """The site key and its id, creating it on first use or after a loss (caller holds the lock)."""
        path = self.layout.key_path
        key = _read_key(path)
        if key is not None:
            warning = _key_mode_warning(path)
            if warning:
                self._warn(warning)
            key_id = _key_id(key)
            if not state.key_ids or state.key_ids[-1] != key_id:
                # A key unknown to the registry (restored from elsewhere): record that it is now in use.
                reason = "key file differs from the last one used" if state.key_ids else "existing key file adopted"
                append_entry_locked(
                    self.layout,
                    "key.changed",
                    {"key_id": key_id, "previous_key_ids": list(state.key_ids), "reason": reason},
                    moment,
                )
                if state.key_ids:
                    self._warn(f"{path} is not the key this registry last used; new pseudonyms derive from it")
                state.key_ids.append(key_id)
            return key, key_id
        key = secrets.token_bytes(_KEY_BYTES)
        key_id = _key_id(key)
        lost = list(state.key_ids)
        create_secret_file(path, key.hex().encode("ascii") + b"\n", what="the site key")
        append_entry_locked(
            self.layout,
            "key.created",
            {"key_id": key_id, "lost_key_ids": lost, "reason": "key file missing" if lost else "first use"},
            moment,
        )
        if lost:
            self._warn(
                f"site key {path} was missing: created a new one ({key_id}). Operators enrolled before keep "
                f"their pseudonyms (looked up by name in the registry); new operators get pseudonyms from the new key"
            )
        state.key_ids.append(key_id)
        return key, key_id

    def enroll(
        self,
        name: str,
        scopes: str | Iterable[str],
        *,
        expires_at: datetime | None = None,
        now: datetime | None = None,
        legal_basis: str = LEGACY_LEGAL_BASIS,
        agreement: str | None = None,
        retention_days: int | None = None,
    ) -> Enrollment:
        """Record that the person ``name`` may be used for ``scopes`` from ``now`` (default: the present).

        A new person gets a pseudonym derived from the site key (created on first use); a known
        name (even after the key was lost) keeps its stored pseudonym and the record in force is
        superseded by the new one. ``expires_at`` must be timezone-aware and after ``now``.

        ``legal_basis``: ``consent`` (the API's default; ``robot-brain consent enroll`` requires it
        explicitly), ``collective_agreement`` (with ``agreement``, the agreement's reference) or
        ``legitimate_interest``. ``retention_days``: episodes recorded under this enrolment expire
        that many days after recording (default :data:`~robot_brain.consent.legal.DEFAULT_RETENTION_DAYS`).
        """
        normalized = normalize_name(name)
        chosen = parse_scopes(scopes)
        basis = parse_legal_basis(legal_basis)
        retention = parse_retention_days(retention_days)
        first_warning = len(self.warnings)
        given_now = require_aware(now, "now") if now is not None else None
        expiry = require_aware(expires_at, "expires_at") if expires_at is not None else None
        self._begin_write()
        with exclusive_lock(self.layout.lock_path):
            # The clock is read under the lock, so grants are ordered as they are applied.
            moment = given_now or utc_now()
            if expiry is not None and expiry <= moment:
                raise ConsentError(f"expiry {format_time(expiry)} is not after the grant time {format_time(moment)}")
            state = self._load(fresh=True)
            reference = parse_agreement(basis, agreement, {normalized, *state.by_name})
            if not state.exists:
                self._write(state)  # an empty registry first: a crash later never leaves grants without one
                state = self._load(fresh=True)
            pseudonym = state.by_name.get(normalized)
            existing = state.operators.get(pseudonym) if pseudonym else None
            if existing is None:
                key, key_id = self._site_key_locked(state, moment)
                pseudonym = derive_pseudonym(key, normalized)
                existing = state.operators.get(pseudonym)
                if existing is not None and existing.normalized_name is not None:
                    raise ConsentError(
                        f"pseudonym {pseudonym} already belongs to another enrolled operator (a 64-bit collision); "
                        "enrol this person under a distinguishing name"
                    )
            if existing is not None and existing.consents and existing.consents[-1].granted_at > moment:
                raise ConsentError(
                    f"cannot enrol {existing.pseudonym} at {format_time(moment)}: a later consent "
                    f"({existing.consents[-1].consent_id}) already exists"
                )
            consent_id = "c-" + secrets.token_hex(8)
            current = existing.consent_at(moment) if existing else None
            record = ConsentRecord(consent_id, pseudonym, chosen, moment, expiry, legal_basis=basis,
                                   agreement=reference, retention_days=retention)
            new_operator = existing is None
            details: dict[str, Any] = {
                "operator": pseudonym,
                "consent": record.to_dict(),
                "new_operator": new_operator,
                "supersedes": current.consent_id if current else None,
            }
            append_entry_locked(self.layout, "consent.granted", details, moment)
            if existing is None:
                operator = EnrolledOperator(pseudonym, name.strip(), normalized, key_id, moment, (record,),
                                            name_check=name_check(key, normalized), name_check_key_id=key_id)
            else:
                consents = tuple(
                    replace(old, superseded_at=moment, superseded_by=consent_id) if old is current else old
                    for old in existing.consents
                )
                operator = replace(
                    existing,
                    name=existing.name or name.strip(),
                    normalized_name=normalized,
                    consents=(*consents, record),
                    forgotten_at=None,
                )
            state.put(operator)
            self._write(state)
        return Enrollment(
            operator.ref,
            record,
            new_operator,
            current.consent_id if current else None,
            tuple(self.warnings[first_warning:]),
        )

    def revoke(
        self, operator: str, scopes: str | Iterable[str] | None = None, *, now: datetime | None = None
    ) -> Revocation:
        """Revoke ``scopes`` (default: all) of the record in force at ``now`` (default: the present).

        Revocation is effective from ``now`` on: episodes recorded before stay recorded, but
        ``check`` refuses the scope for any instant from ``now``. Nothing in force to revoke is
        not an error (the result says so, and nothing is logged).
        """
        return self._withdraw(operator, scopes, now, objection=False)

    def object(self, operator: str, *, now: datetime | None = None) -> Revocation:
        """The operator objects (Art. 21 GDPR under ``legitimate_interest``) or opts out: honoured as a revocation.

        Every scope in force at ``now`` is revoked exactly as :meth:`revoke` does (the same
        code: the recorder's re-check discards an episode in progress, export and training
        refuse, the policy node refuses models trained on them), whatever the legal basis; the
        audit log records it as ``consent.objected`` with the basis, and the record keeps
        ``objected_at``. Nothing in force is not an error (nothing is logged).
        """
        return self._withdraw(operator, None, now, objection=True)

    def _withdraw(
        self, operator: str, scopes: str | Iterable[str] | None, now: datetime | None, *, objection: bool
    ) -> Revocation:
        """Revocation and objection: one code path, two audit kinds."""
        if non_human_kind(operator) is not None:
            raise ConsentError(f"operator '{operator}' is not a person: non-human operators need no consent")
        chosen = parse_scopes(scopes) if scopes is not None else SCOPES
        given_now = require_aware(now, "now") if now is not None else None
        if not self._load().exists:
            raise self._unknown(operator)
        self._begin_write()
        with exclusive_lock(self.layout.lock_path):
            moment = given_now or utc_now()
            state = self._load(fresh=True)
            found = state.find(operator)
            if found is None:
                raise self._unknown(operator)
            current = found.consent_at(moment)
            granted = current.scopes_at(moment) if current else ()
            revoked = tuple(scope for scope in chosen if scope in granted)
            not_in_force = tuple(scope for scope in chosen if scope not in granted)
            if current is not None and revoked:
                details: dict[str, Any] = {
                    "operator": found.pseudonym,
                    "consent_id": current.consent_id,
                    "scopes": list(revoked),
                    "at": format_time(moment),
                }
                if objection:
                    details["legal_basis"] = current.legal_basis
                    details["meaning"] = OBJECTION_MEANING[current.legal_basis]
                append_entry_locked(self.layout, "consent.objected" if objection else "consent.revoked", details,
                                    moment)
                updated = replace(current, revoked_at={**current.revoked_at, **dict.fromkeys(revoked, moment)})
                if objection:
                    updated = replace(updated, objected_at=moment)
                state.put(replace(found, consents=tuple(updated if c is current else c for c in found.consents)))
                self._write(state)
        return Revocation(found.ref, current.consent_id if current else None, revoked, not_in_force, moment)

    def forget(self, operator: str, *, now: datetime | None = None) -> Revocation:
        """Right to erasure: revoke every scope in force, drop the clear name, and retire the site key.

        The pseudonym and its consent history stay (evidence of what was consented when), but
        nothing links them to a person any more: the site key is replaced by a new one (a
        ``key.rotated`` audit entry), so HMAC(key, name) no longer re-derives the pseudonym, and
        enrolling the same name later gives a new one. Other operators keep their stored
        pseudonyms; their names are bound again under the new key (``name_check``), so ``verify``
        still catches swapped names. Resolve the pseudonym (``resolve``) before calling this if
        you still need it to find the person's episodes.
        """
        if non_human_kind(operator) is not None:
            raise ConsentError(f"operator '{operator}' is not a person: there is no name to forget")
        given_now = require_aware(now, "now") if now is not None else None
        if not self._load().exists:
            raise self._unknown(operator)
        self._begin_write()
        with exclusive_lock(self.layout.lock_path):
            moment = given_now or utc_now()
            state = self._load(fresh=True)
            found = state.find(operator)
            if found is None:
                raise self._unknown(operator)
            current = found.consent_at(moment)
            revoked = current.scopes_at(moment) if current else ()
            append_entry_locked(
                self.layout,
                "operator.forgotten",
                {
                    "operator": found.pseudonym,
                    "consent_id": current.consent_id if current else None,
                    "scopes": list(revoked),
                    "at": format_time(moment),
                },
                moment,
            )
            consents = found.consents
            if current is not None and revoked:
                updated = replace(current, revoked_at={**current.revoked_at, **dict.fromkeys(revoked, moment)})
                consents = tuple(updated if c is current else c for c in consents)
            if found.normalized_name:
                state.by_name.pop(found.normalized_name, None)
            state.put(replace(found, name=None, normalized_name=None, consents=consents, forgotten_at=moment,
                              name_check=None, name_check_key_id=None))
            self._rotate_key_locked(state, moment, "operator.forgotten")
            self._write(state)
        return Revocation(found.ref, current.consent_id if current else None, revoked, (), moment)

    def _rotate_key_locked(self, state: _State, moment: datetime, reason: str) -> None:
        """Replace the site key; bind every remaining name to the new one (caller holds the lock, then writes).

        Refused when a stored name does not match the current key (a tampered registry): a
        rotation must not launder that into fresh name checks.
        """
        path = self.layout.key_path
        old = _read_key(path)
        if old is not None:
            old_id = _key_id(old)
            for operator in state.operators.values():
                if operator.normalized_name and not _name_matches(operator, old, old_id):
                    raise DataFileError(
                        f"{self.layout.registry_path}: operator {operator.pseudonym}'s stored name does not match "
                        "the site key (names swapped or edited); run robot-brain consent verify"
                    )
        key = secrets.token_bytes(_KEY_BYTES)
        key_id = _key_id(key)
        append_entry_locked(
            self.layout,
            "key.rotated",
            {"key_id": key_id, "retired_key_ids": [_key_id(old)] if old is not None else [], "reason": reason},
            moment,
        )
        atomic_write_bytes(path, key.hex().encode("ascii") + b"\n", mode=0o600)
        state.key_ids.append(key_id)
        for operator in list(state.operators.values()):
            if operator.normalized_name:
                state.put(replace(operator, name_check=name_check(key, operator.normalized_name),
                                  name_check_key_id=key_id))


# --------------------------------------------------------------------------------------------
# Verification: the audit chain, and the registry replayed from it
# --------------------------------------------------------------------------------------------


_LEGACY_RECORD_FIELDS: dict[str, Any] = {
    "legal_basis": LEGACY_LEGAL_BASIS, "agreement": None, "retention_days": None, "objected_at": None
}
"""What a consent granted before legal bases and retention were recorded reads as (in the log and the registry)."""


def _replay(entries: Sequence[AuditEntry]) -> tuple[dict[str, dict[str, Any]], dict[str, str | None], list[str]]:
    """Consent records and operators' forgotten state as the audit log tells them."""
    records: dict[str, dict[str, Any]] = {}
    forgotten: dict[str, str | None] = {}
    problems: list[str] = []
    for entry in entries:
        details = entry.details
        where = f"audit.jsonl line {entry.line} (entry {entry.seq}, {entry.kind})"
        try:
            if entry.kind == "consent.granted":
                record = {**_LEGACY_RECORD_FIELDS, **dict(details["consent"])}
                records[record["consent_id"]] = record
                forgotten[str(details["operator"])] = None
                superseded = details.get("supersedes")
                if superseded:
                    records[superseded]["superseded_at"] = record["granted_at"]
                    records[superseded]["superseded_by"] = record["consent_id"]
            elif entry.kind in ("consent.revoked", "consent.objected", "operator.forgotten"):
                consent_id = details.get("consent_id")
                if consent_id:
                    revoked = dict(records[consent_id]["revoked_at"])
                    revoked.update(dict.fromkeys(details["scopes"], details["at"]))
                    records[consent_id]["revoked_at"] = dict(sorted(revoked.items()))
                    if entry.kind == "consent.objected":
                        records[consent_id]["objected_at"] = details["at"]
                if entry.kind == "operator.forgotten":
                    forgotten[str(details["operator"])] = details["at"]
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"{where}: refers to a consent the log never granted or lacks a field ({error})")
    return records, forgotten, problems


def verify_consent(data_root: str | os.PathLike[str] | DataLayout | None = None) -> ConsentVerification:
    """``consent verify``: the audit chain, the registry against the log, the key file.

    Problems (tampering or damage): a broken chain (first bad entry named), a consent record in
    ``registry.json`` that differs from what the log granted and revoked (e.g. a scope added by
    hand, a revocation removed) or that the log never granted, and a pseudonym that does not
    derive from its stored name under the present key (names swapped). Warnings: the key file
    missing (a new one is made at the next new enrolment) or readable by others.
    """
    layout = DataLayout.resolve(data_root)
    layout.require_root()
    if not layout.consent_dir.is_dir():
        raise DataFileError(f"{layout.consent_dir}: expected the consent folder, found none (nothing enrolled yet)")
    warnings: list[str] = []
    damage: list[str] = []
    state, key = _State(), None
    with exclusive_lock(layout.lock_path):
        audit = verify_audit(layout, locked=True)
        try:
            state = ConsentRegistry(layout)._load(fresh=True)
        except DataFileError as error:
            damage.append(str(error))
        try:
            key = _read_key(layout.key_path)
        except DataFileError as error:
            damage.append(str(error))
    problems = list(audit.problems) + damage
    records, forgotten, replay_problems = _replay(audit.entries)
    problems.extend(replay_problems)
    stored_ids: set[str] = set()
    consent_count = 0
    for operator in state.operators.values():
        if operator.pseudonym not in forgotten:
            problems.append(f"registry.json: operator {operator.pseudonym} was never enrolled in the audit log")
        elif (operator.forgotten_at is None) != (forgotten[operator.pseudonym] is None):
            problems.append(
                f"registry.json: operator {operator.pseudonym}'s forgotten state differs from the audit log"
            )
        for record in operator.consents:
            consent_count += 1
            stored_ids.add(record.consent_id)
            logged = records.get(record.consent_id)
            if logged is None:
                problems.append(
                    f"registry.json: consent {record.consent_id} of {operator.pseudonym} "
                    "was never granted in the audit log"
                )
            elif record.to_dict() != logged:
                differing = sorted(key for key, value in record.to_dict().items() if logged.get(key) != value)
                problems.append(
                    f"registry.json: consent {record.consent_id} of {operator.pseudonym} differs from the audit log "
                    f"in {', '.join(differing)}"
                )
        if key is not None and operator.normalized_name and state.key_ids:
            if not _name_matches(operator, key, _key_id(key)):
                problems.append(
                    f"registry.json: operator {operator.pseudonym}'s stored name does not derive that pseudonym "
                    "under the site key (names swapped or edited)"
                )
    legacy = sorted(
        operator.pseudonym
        for operator in state.operators.values()
        if operator.consents and operator.forgotten_at is None and operator.consents[-1].retention_days is None
    )
    if legacy:
        shown = ", ".join(legacy[:3]) + (f" and {len(legacy) - 3} more" if len(legacy) > 3 else "")
        warnings.append(
            f"consent of {shown} was recorded before legal bases and retention periods were: it reads as legal basis "
            "'consent' with no retention period (their episodes never expire); re-enrol them with --legal-basis "
            "and --retention-days"
        )
    for consent_id in sorted(set(records) - stored_ids):
        problems.append(
            f"audit log grants consent {consent_id} that registry.json lacks "
            "(deleted from the registry, or a crash between the log append and the registry write)"
        )
    if key is None and state.operators:
        warnings.append(
            f"{layout.key_path} is missing: existing pseudonyms stay valid; a new key is created at the next "
            "enrolment of a new operator"
        )
    elif key is not None:
        warning = _key_mode_warning(layout.key_path)
        if warning:
            warnings.append(warning)
    return ConsentVerification(audit, tuple(problems), tuple(warnings), len(state.operators), consent_count)


__all__ = [
    "ConsentDeniedError",
    "ConsentRecord",
    "ConsentRegistry",
    "ConsentVerification",
    "Decision",
    "EnrolledOperator",
    "Enrollment",
    "OperatorRef",
    "Revocation",
    "derive_pseudonym",
    "verify_consent",
]
