"""The law behind an enrolment: its legal basis, its retention period, the right to object (pure).

Consent between employer and employee is presumed not to be freely given (EDPB Guidelines
05/2020 on consent, §21; Art. 29 WP Opinion 2/2017 on data processing at work), so a site
records *which* basis each enrolment relies on:

==========================  ===========================================================================
``consent``                 GDPR Art. 6(1)(a): the person agreed; withdrawn at any time (``revoke``).
``collective_agreement``    GDPR Art. 88 with a collective or works agreement (e.g. a German
                            *Betriebsvereinbarung*, § 26(4) BDSG); the agreement's reference is recorded.
``legitimate_interest``     GDPR Art. 6(1)(f), after a balancing test; the person may object (Art. 21).
==========================  ===========================================================================

Whatever the basis, ``robot-brain consent object`` (an objection, or an opt-out under an
agreement) is honoured exactly like a revocation of every scope: the site does not weigh
"compelling legitimate grounds" against it.

**Retention.** Every enrolment has a retention period in days (default
:data:`DEFAULT_RETENTION_DAYS`, at most :data:`MAX_RETENTION_DAYS`): an episode recorded more
than that long ago is *expired*, and export and training treat it like one whose consent was
withdrawn; ``robot-brain data purge --expired`` erases it. The period that applies to an
episode is the shorter of the one of the enrolment it was recorded under and the one in force
now (a later, shorter period applies at once; a longer one never extends what was recorded).

**Records written before this module** have neither field: they read as ``consent`` with no
retention period (``None``: no automatic expiry), and ``consent verify`` warns about them;
re-enrol the person to record a basis and a period.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from robot_brain.consent.audit import refuse_clear_names
from robot_brain.consent.operators import ConsentError
from robot_brain.storage.times import require_aware

LegalBasis = Literal["consent", "collective_agreement", "legitimate_interest"]

LEGAL_BASES: tuple[str, ...] = ("consent", "collective_agreement", "legitimate_interest")
LEGACY_LEGAL_BASIS = "consent"
"""What a consent record written before legal bases were recorded reads as."""

LEGAL_BASIS_ARTICLES: dict[str, str] = {
    "consent": "GDPR Art. 6(1)(a) (consent; withdrawable at any time, Art. 7(3))",
    "collective_agreement": "GDPR Art. 88 (collective or works agreement)",
    "legitimate_interest": "GDPR Art. 6(1)(f) (legitimate interest; right to object, Art. 21)",
}
OBJECTION_MEANING: dict[str, str] = {
    "consent": "withdrawal of consent (GDPR Art. 7(3))",
    "collective_agreement": "opt-out under the collective agreement",
    "legitimate_interest": "objection (GDPR Art. 21)",
}

DEFAULT_RETENTION_DAYS = 365
"""Retention of an enrolment when none is given: one year from each episode's recording."""
MAX_RETENTION_DAYS = 3650
"""Longest retention accepted (ten years): longer is no retention period at all."""

_MAX_REFERENCE_LENGTH = 200
_REFERENCE_PATTERN = re.compile(r"[\w][\w .,:;/()#§&+'-]*", re.UNICODE)


def parse_legal_basis(text: str) -> str:
    """``consent`` / ``collective_agreement`` / ``legitimate_interest`` (``-`` reads as ``_``)."""
    if not isinstance(text, str):
        raise ConsentError(f"legal basis: expected text, found {type(text).__name__}")
    basis = text.strip().lower().replace("-", "_")
    if basis not in LEGAL_BASES:
        raise ConsentError(f"bad legal basis '{text.strip()}': expected one of {', '.join(LEGAL_BASES)}")
    return basis


def parse_agreement(basis: str, reference: str | None, names: Iterable[str] = ()) -> str | None:
    """The agreement reference to record with ``basis``: required for a collective agreement, refused otherwise.

    The reference (``BV-2026-03``, ``Works agreement robot cell 4, 2026-02-01``) travels with the
    consent into audit entries and dataset provenance, so it may not be or contain a person's
    name (``names``: normalised names to refuse, the enrollee's among them).
    """
    if basis != "collective_agreement":
        if reference is not None:
            raise ConsentError(
                f"an agreement reference is recorded only with the legal basis collective_agreement, not {basis}"
            )
        return None
    if reference is None or not reference.strip():
        raise ConsentError(
            "legal basis collective_agreement: expected the agreement's reference (--agreement REF), found none"
        )
    text = " ".join(reference.split())
    if len(text) > _MAX_REFERENCE_LENGTH:
        raise ConsentError(
            f"agreement reference is {len(text)} characters long: expected at most {_MAX_REFERENCE_LENGTH}"
        )
    if any(unicodedata.category(c).startswith("C") for c in text) or not _REFERENCE_PATTERN.fullmatch(text):
        raise ConsentError(
            "agreement reference: expected letters, digits, spaces and . , : ; / ( ) # § & + ' -"
        )
    try:
        refuse_clear_names({"agreement": text}, names)
    except ValueError:
        raise ConsentError("agreement reference holds a person's name: give the agreement's reference only") from None
    return text


def parse_retention_days(value: int | str | None) -> int:
    """Whole days, 1 to :data:`MAX_RETENTION_DAYS`; ``None`` is :data:`DEFAULT_RETENTION_DAYS`."""
    if value is None:
        return DEFAULT_RETENTION_DAYS
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConsentError(f"retention: expected a whole number of days, found {type(value).__name__}")
    try:
        days = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ConsentError(f"bad retention '{value}': expected a whole number of days") from None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ConsentError(f"retention of {days} days: expected 1 to {MAX_RETENTION_DAYS} days")
    return days


def retention_end(recorded_at: datetime, days: int) -> datetime:
    """The first instant an episode recorded at ``recorded_at`` is expired under a ``days`` retention."""
    return require_aware(recorded_at, "recorded_at") + timedelta(days=days)


__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "LEGACY_LEGAL_BASIS",
    "LEGAL_BASES",
    "LEGAL_BASIS_ARTICLES",
    "MAX_RETENTION_DAYS",
    "OBJECTION_MEANING",
    "LegalBasis",
    "parse_agreement",
    "parse_legal_basis",
    "parse_retention_days",
    "retention_end",
]
