"""Operator ids and what a person's name may look like: the vocabulary every consent check speaks.

Human operators are named by pseudonym (``op-`` + 16 hex digits, derived by the registry);
non-human ones by ``policy:<hex of the model's SHA-256>`` or ``scripted[:<name>]``. A person's
name is only ever compared in :func:`normalize_text`'s form (NFKC, case-folded, whitespace
collapsed). Scopes (``record``, ``train``, ``export``) and consent expiry dates are parsed here.

Pure functions, no file access: the audit log's name guard and the registry both build on it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Literal

from robot_brain.errors import UserError
from robot_brain.storage.times import format_time, require_aware, utc_now

SCOPES: tuple[str, ...] = ("record", "train", "export")
"""``record``: may be recorded; ``train``: episodes may train models; ``export``: may leave the site."""

Scope = Literal["record", "train", "export"]
OperatorKind = Literal["human", "policy", "scripted"]

PSEUDONYM_PREFIX = "op-"
PSEUDONYM_HEX_DIGITS = 16
_PSEUDONYM_PATTERN = re.compile(rf"{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX_DIGITS}}}")
_POLICY_PATTERN = re.compile(r"policy:[0-9a-f]{8,64}")
_SCRIPTED_PATTERN = re.compile(r"scripted(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?")
_MAX_NAME_LENGTH = 200


class ConsentError(UserError):
    """A consent request the user can fix: bad scope, bad date, a name that is not a person's, ..."""


class UnknownOperatorError(ConsentError):
    """No operator is enrolled under that name or pseudonym (the message never repeats a name)."""




def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form names are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalize_name(name: str) -> str:
    """A person's name in comparison form; ``ConsentError`` for an empty or unusable one.

    Refuses names that could be mistaken for an operator id (``op-…``, ``policy:…``, ``scripted…``).
    The message never repeats the name.
    """
    if not isinstance(name, str):
        raise ConsentError(f"operator name: expected text, found {type(name).__name__}")
    normalized = normalize_text(name)
    if not normalized:
        raise ConsentError("operator name is empty: expected a person's name")
    if len(normalized) > _MAX_NAME_LENGTH:
        raise ConsentError(f"operator name is {len(normalized)} characters long: expected at most {_MAX_NAME_LENGTH}")
    if any(unicodedata.category(character).startswith("C") for character in normalized):
        raise ConsentError("operator name contains control characters: expected printable text")
    if (
        _PSEUDONYM_PATTERN.fullmatch(normalized)
        or normalized.startswith(("policy:", "scripted:"))
        or normalized == "scripted"
    ):
        raise ConsentError(
            "operator name looks like an operator id (op-…, policy:…, scripted…): expected a person's name"
        )
    return normalized


def non_human_kind(operator: str) -> OperatorKind | None:
    """``"policy"``/``"scripted"`` for a non-human operator id, ``None`` for anything else.

    A malformed id in those namespaces (``policy:XYZ``) is a :class:`ConsentError`, so a typo
    never silently becomes a person's name.
    """
    if operator.startswith("policy:"):
        if not _POLICY_PATTERN.fullmatch(operator):
            raise ConsentError(
                f"operator '{operator}': expected policy:<8 to 64 lowercase hex digits of the model's SHA-256>"
            )
        return "policy"
    if operator == "scripted" or operator.startswith("scripted:"):
        if not _SCRIPTED_PATTERN.fullmatch(operator):
            raise ConsentError(f"operator '{operator}': expected scripted or scripted:<name of letters, digits, _.->")
        return "scripted"
    return None


def policy_operator(model_sha256: str, digits: int = 16) -> str:
    """The operator id of episodes a policy drove: ``policy:`` + the first ``digits`` hex of its SHA-256."""
    text = model_sha256.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text) or not 8 <= digits <= 64:
        raise ValueError("policy_operator: expected a 64-hex SHA-256 and 8 <= digits <= 64")
    return f"policy:{text[:digits]}"


def scripted_operator(name: str | None = None) -> str:
    """``scripted`` or ``scripted:<name>`` for episodes a scripted expert drove."""
    operator = "scripted" if not name else f"scripted:{name}"
    non_human_kind(operator)
    return operator


def is_pseudonym(text: str) -> bool:
    """Whether ``text`` has the form of a human operator's pseudonym (``op-`` + 16 hex)."""
    return bool(_PSEUDONYM_PATTERN.fullmatch(text))


def parse_scopes(values: str | Iterable[str]) -> tuple[str, ...]:
    """``"record,train"`` or ``["record", "train,export"]`` → scopes in canonical order."""
    parts = [values] if isinstance(values, str) else list(values)
    chosen: set[str] = set()
    for part in parts:
        for item in str(part).split(","):
            scope = item.strip().lower()
            if not scope:
                continue
            if scope not in SCOPES:
                raise ConsentError(f"bad scope '{item.strip()}': expected one of {', '.join(SCOPES)}")
            chosen.add(scope)
    if not chosen:
        raise ConsentError(f"no scope given: expected a comma-separated list of {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in chosen)


def require_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ConsentError(f"bad scope '{scope}': expected one of {', '.join(SCOPES)}")
    return scope


def parse_expiry(text: str, *, now: datetime | None = None) -> datetime:
    """The instant a consent given "until ``text``" ends, in UTC.

    ``YYYY-MM-DD`` means through the end of that day in this machine's local time zone (the
    consent ends at the following local midnight). An ISO 8601 time is taken as is, in local
    time when it has no offset. Bad or past dates are a :class:`ConsentError`.
    """
    moment_now = require_aware(now) if now is not None else utc_now()
    stripped = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stripped):
            following_day = date.fromisoformat(stripped) + timedelta(days=1)
            moment = datetime.combine(following_day, time()).astimezone()
        else:
            parsed = datetime.fromisoformat(stripped[:-1] + "+00:00" if stripped.endswith("Z") else stripped)
            moment = parsed.astimezone() if parsed.tzinfo is None else parsed
    except (ValueError, OverflowError) as error:
        raise ConsentError(f"bad date '{text}': expected YYYY-MM-DD or an ISO 8601 time") from error
    moment = require_aware(moment)
    if moment <= moment_now:
        raise ConsentError(f"expiry '{text}' is not in the future (now {format_time(moment_now)})")
    return moment
