"""The site's audit log: JSON lines, each carrying the SHA-256 of the line before it.

Every change of consent (enrolment, revocation, a new site key) and every event other modules
report (an export, a purge of an operator's data) is one line of
``<data root>/consent/audit.jsonl``::

    {"details":{...},"kind":"dataset.exported","prev":"<sha256 of the previous line>","seq":7,"time":"...Z"}

``seq`` counts from 1 (entry n is line n of an intact log); ``prev`` is the SHA-256 (hex) of
the previous line's bytes without its newline, 64 zeros for the first entry. Editing,
deleting or reordering any line but the last breaks the chain at the next line, which
:func:`verify_audit` names. Cutting lines off the end leaves a valid chain, so every append
also records the last entry's number and hash in ``audit.head`` (atomically) and the check
compares them. Entries are compact, key-sorted, ASCII-only JSON, so a line never contains a
raw newline.

A hash chain kept on the same disk is tamper-*evident* against edits by hand and by tools that
do not know the format, not against someone who rewrites the whole chain and the head: to
anchor it, note the head hash that ``robot-brain consent verify`` prints somewhere else.

Nothing in the log may identify a person: operators appear by pseudonym only, and
:func:`append_audit` refuses details that contain an enrolled operator's clear name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from robot_brain.consent.operators import normalize_text
from robot_brain.storage.files import (
    DataFileError,
    append_line_durable,
    atomic_write_json,
    exclusive_lock,
    read_json_file,
)
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, parse_time, utc_now

GENESIS_HASH = "0" * 64
"""``prev`` of the first entry."""

ENTRY_KEYS = frozenset({"seq", "time", "kind", "details", "prev"})

RESERVED_KIND_PREFIXES = ("consent.", "key.", "operator.")
"""Kinds only the consent registry writes: ``consent verify`` replays them against the registry."""

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_NAME_SUBSTRING_MIN_LENGTH = 4


class AuditLogError(DataFileError):
    """The audit log (or its head file) cannot be read, or a line is not an audit entry."""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log, as stored."""

    seq: int
    time: datetime
    kind: str
    details: Mapping[str, Any]
    prev: str
    sha256: str
    """SHA-256 of this entry's line (what the next entry's ``prev`` must be)."""
    line: int
    """Line number in the file (1-based)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": format_time(self.time),
            "kind": self.kind,
            "details": dict(self.details),
            "prev": self.prev,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class AuditCheck:
    """What :func:`verify_audit` found. ``ok`` is false when any problem was found."""

    path: Path
    lines: int
    entries: tuple[AuditEntry, ...]
    """Every line that parsed as an entry, in file order (also those after a break in the chain)."""
    head_sha256: str | None
    """SHA-256 of the last line: note it elsewhere to anchor the chain."""
    problems: tuple[str, ...] = ()
    """Evidence of tampering or damage, first (earliest line) first; each names the file and line."""
    first_bad_line: int | None = None
    notes: tuple[str, ...] = field(default=())
    """Harmless findings (no head file yet, a head one append behind after a crash)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def line_sha256(line: bytes) -> str:
    """The hash an entry's successor carries: SHA-256 of the line without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def encode_entry(seq: int, moment: datetime, kind: str, details: Mapping[str, Any], prev: str) -> bytes:
    """One audit line (with its newline): compact, sorted keys, ASCII only."""
    document = {"seq": seq, "time": format_time(moment), "kind": kind, "details": dict(details), "prev": prev}
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"audit details of '{kind}' are not plain JSON: {error}") from error
    return text.encode("ascii") + b"\n"


def _parse_entry(raw: bytes, line: int) -> AuditEntry:
    """An entry from one line; ``ValueError`` with a short reason when it is not one."""
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"not JSON ({getattr(error, 'msg', error)})") from error
    if not isinstance(document, dict) or set(document) != ENTRY_KEYS:
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"expected the keys {sorted(ENTRY_KEYS)}, found {found}")
    seq, kind, details, prev = document["seq"], document["kind"], document["details"], document["prev"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError(f"expected a positive integer seq, found {seq!r}")
    if not isinstance(kind, str) or not isinstance(details, dict) or not isinstance(prev, str):
        raise ValueError("expected kind (text), details (object) and prev (text)")
    try:
        moment = parse_time(document["time"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"expected an ISO 8601 UTC time, found {document['time']!r}") from error
    return AuditEntry(seq, moment, kind, details, prev, line_sha256(raw), line)


def _last_line(path: Path) -> tuple[bytes | None, int, bool]:
    """(last line without newline or None, file size, whether the file ends with a newline)."""
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        return None, 0, True
    except OSError as error:
        raise AuditLogError(f"cannot read the audit log {path}: {error.strerror or error}") from error
    with stream:
        size = stream.seek(0, os.SEEK_END)
        if size == 0:
            return None, 0, True
        stream.seek(size - 1)
        ends_with_newline = stream.read(1) == b"\n"
        end = size - 1 if ends_with_newline else size
        collected, position = b"", end
        while position > 0:
            start = max(0, position - 65536)
            stream.seek(start)
            collected = stream.read(position - start) + collected
            position = start
            newline = collected.rfind(b"\n")
            if newline >= 0:
                return collected[newline + 1 :], size, ends_with_newline
        return collected, size, ends_with_newline


def _next_seq(path: Path, last: bytes) -> int:
    try:
        seq = json.loads(last)["seq"]
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1:
            return seq + 1
    except (ValueError, KeyError, TypeError):
        pass
    # The last line is not an entry (damage verify will report): number by position instead.
    with open(path, "rb") as stream:
        data = stream.read()
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1) + 1


def append_entry_locked(
    layout: DataLayout, kind: str, details: Mapping[str, Any], now: datetime | None = None
) -> AuditEntry:
    """Append one entry; the caller holds ``exclusive_lock(layout.lock_path)`` and checked ``kind``.

    Used by the consent registry inside its own locked read-modify-write; everyone else calls
    :func:`append_audit`.
    """
    moment = now if now is not None else utc_now()
    path = layout.audit_log_path
    last, _size, ends_with_newline = _last_line(path)
    if last is None:
        seq, prev = 1, GENESIS_HASH
    else:
        seq, prev = _next_seq(path, last), line_sha256(last)
    line = encode_entry(seq, moment, kind, details, prev)
    if not ends_with_newline:
        # A torn last line (power loss mid-append): close it so it stays visible to verify, never merged.
        append_line_durable(path, b"\n")
    append_line_durable(path, line)
    entry = AuditEntry(seq, moment, kind, dict(details), prev, line_sha256(line), seq)
    atomic_write_json(layout.audit_head_path, {"seq": seq, "sha256": entry.sha256}, mode=0o600)
    return entry


def _string_leaves(value: Any, where: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{where}.{key}", str(key)
            yield from _string_leaves(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _string_leaves(item, f"{where}[{index}]")


def refuse_clear_names(details: Mapping[str, Any], normalized_names: Iterable[str]) -> None:
    """``ValueError`` when a text in ``details`` is (or, for names of 4+ characters, contains) a name.

    Texts and names are compared after the registry's name normalisation (NFKC, case-folded,
    whitespace collapsed). The error names where, never what.
    """
    names = [name for name in normalized_names if name]
    if not names:
        return
    for where, text in _string_leaves(details, "details"):
        folded = normalize_text(text)
        for name in names:
            if folded == name or (
                len(name) >= _NAME_SUBSTRING_MIN_LENGTH
                and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", folded) is not None
            ):
                raise ValueError(
                    f"audit {where} holds an enrolled operator's clear name: pass the pseudonym (op-...) instead"
                )


def read_audit(data_root: str | os.PathLike[str] | DataLayout | None) -> tuple[AuditEntry, ...]:
    """Every entry in file order (empty when there is no log). Does not check the chain: use
    :func:`verify_audit` for that. A line that is not an entry is an :class:`AuditLogError`."""
    layout = DataLayout.resolve(data_root)
    path = layout.audit_log_path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ()
    except OSError as error:
        raise AuditLogError(f"cannot read the audit log {path}: {error.strerror or error}") from error
    entries = []
    for number, raw in enumerate(_split_lines(data)[0], start=1):
        try:
            entries.append(_parse_entry(raw, number))
        except ValueError as error:
            raise AuditLogError(f"{path} line {number}: not an audit entry: {error}") from error
    return tuple(entries)


def _split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """(lines, whether the last one is torn: no newline after it)."""
    if not data:
        return [], False
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    if not torn:
        lines.pop()
    return lines, torn


def verify_audit(data_root: str | os.PathLike[str] | DataLayout | None, *, locked: bool = False) -> AuditCheck:
    """Check the chain line by line and against ``audit.head``; name the first bad entry.

    Finds: a line that is not an entry, an edited entry (the next line's ``prev`` differs), a
    deleted entry (a gap in ``seq``), reordered or duplicated entries (``seq`` not increasing),
    a truncated tail (``audit.head`` records a later entry) and a torn last line. ``locked``:
    the caller already holds the consent lock (otherwise it is taken, so no append is half-read).
    A missing log is an :class:`AuditLogError` (nothing to verify); an empty one is fine.
    """
    layout = DataLayout.resolve(data_root)
    if locked:
        return _verify_locked(layout)
    if not layout.consent_dir.is_dir():
        raise AuditLogError(f"{layout.audit_log_path}: expected the audit log, found no consent folder")
    with exclusive_lock(layout.lock_path):
        return _verify_locked(layout)


def _verify_locked(layout: DataLayout) -> AuditCheck:
    path = layout.audit_log_path
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise AuditLogError(f"{path}: expected the audit log, found no file (nothing was ever recorded)") from error
    except OSError as error:
        raise AuditLogError(f"cannot read the audit log {path}: {error.strerror or error}") from error
    lines, torn = _split_lines(data)
    problems: list[tuple[int, str]] = []
    notes: list[str] = []
    entries: list[AuditEntry] = []
    expected_seq, previous_hash, previous_seq = 1, GENESIS_HASH, 0
    name = f"{path.parent.name}/{path.name}"
    for number, raw in enumerate(lines, start=1):
        where = f"{name} line {number}"
        try:
            entry = _parse_entry(raw, number)
        except ValueError as error:
            tail = " (torn: a crash during an append?)" if torn and number == len(lines) else ""
            problems.append((number, f"{where}: not an audit entry{tail}: {error}"))
            expected_seq, previous_hash, previous_seq = expected_seq + 1, line_sha256(raw), expected_seq
            continue
        entries.append(entry)
        label = f"{where} (entry {entry.seq}, {entry.kind})"
        if entry.seq > expected_seq:
            missing = (
                f"entry {expected_seq}" if entry.seq == expected_seq + 1 else f"entries {expected_seq}-{entry.seq - 1}"
            )
            problems.append((number, f"{label}: follows entry {previous_seq}: {missing} deleted"))
        elif entry.seq < expected_seq:
            problems.append((number, f"{label}: follows entry {previous_seq}: entries reordered or duplicated"))
        elif entry.prev != previous_hash:
            if number == 1:
                problems.append((number, f"{label}: expected the first entry's prev of zeros: the log's start was cut"))
            else:
                problems.append(
                    (
                        number - 1,
                        f"{name} line {number - 1} (entry {previous_seq}) was edited: its SHA-256 is not the prev "
                        f"recorded by entry {entry.seq} on line {number}",
                    )
                )
        expected_seq, previous_hash, previous_seq = entry.seq + 1, entry.sha256, entry.seq
    head_hash = line_sha256(lines[-1]) if lines else None
    _check_head(layout, lines, entries, problems, notes)
    problems.sort(key=lambda item: item[0])
    return AuditCheck(
        path=path,
        lines=len(lines),
        entries=tuple(entries),
        head_sha256=head_hash,
        problems=tuple(text for _, text in problems),
        first_bad_line=problems[0][0] if problems else None,
        notes=tuple(notes),
    )


def _check_head(
    layout: DataLayout,
    lines: list[bytes],
    entries: list[AuditEntry],
    problems: list[tuple[int, str]],
    notes: list[str],
) -> None:
    head_path = layout.audit_head_path
    if not head_path.exists():
        if lines:
            notes.append(f"no {head_path.name}: a cut-off tail of the log could not be detected")
        return
    try:
        head = read_json_file(head_path, what="the audit head")
    except DataFileError as error:
        problems.append((len(lines) + 1, str(error)))
        return
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or not isinstance(head.get("sha256"), str):
        problems.append((len(lines) + 1, f"{head_path}: expected {{seq, sha256}}, found {head!r}"))
        return
    last_seq = entries[-1].seq if entries else 0
    recorded = next((entry for entry in entries if entry.seq == head["seq"]), None)
    if head["seq"] > last_seq:
        problems.append(
            (
                len(lines) + 1,
                f"{layout.audit_log_path.name} ends at entry {last_seq} but {head_path.name} records entry "
                f"{head['seq']}: entries after {last_seq} were cut off",
            )
        )
    elif recorded is None or recorded.sha256 != head["sha256"]:
        line = recorded.line if recorded else len(lines)
        problems.append(
            (line, f"{layout.audit_log_path.name} line {line} (entry {head['seq']}) does not match {head_path.name}")
        )
    elif head["seq"] < last_seq:
        notes.append(
            f"{head_path.name} records entry {head['seq']} of {last_seq}: a crash between an append and the head update"
        )
