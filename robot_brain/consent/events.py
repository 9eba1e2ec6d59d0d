"""Other modules' events in the site's audit log (``dataset.exported``, ``model.trained``, ``data.purged``, ...).

The audit log (:mod:`robot_brain.consent.audit`) is a hash-chained file the registry writes
under its lock; an event from elsewhere goes through :func:`append_audit`, which takes the same
lock and refuses any text that is an enrolled person's clear name, read from the registry
(:mod:`robot_brain.consent.registry`). It sits above both, so neither imports the other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from robot_brain.consent.audit import (
    GENESIS_HASH,
    KIND_PATTERN,
    RESERVED_KIND_PREFIXES,
    AuditEntry,
    append_entry_locked,
    encode_entry,
    refuse_clear_names,
)
from robot_brain.consent.registry import registered_names_locked
from robot_brain.storage.files import exclusive_lock
from robot_brain.storage.paths import CONSENT_DIR_MODE, DataLayout
from robot_brain.storage.times import utc_now


def append_audit(
    data_root: str | os.PathLike[str] | DataLayout | None,
    kind: str,
    details: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> AuditEntry:
    """Append an event of another module (``dataset.exported``, ``data.purged``, ...) to the audit log.

    ``kind`` is dotted lower case (``area.event``); the ``consent.``, ``key.`` and ``operator.``
    kinds belong to the consent registry. ``details`` is plain JSON; name operators by
    pseudonym: a text equal to an enrolled operator's clear name is refused (``ValueError``).
    Creates the consent folder (0700) when missing; serialised with the registry's writers.
    """
    layout = DataLayout.resolve(data_root)
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"audit kind {kind!r}: expected dotted lower case such as 'dataset.exported'")
    if kind.startswith(RESERVED_KIND_PREFIXES):
        raise ValueError(f"audit kind {kind!r} is reserved for the consent registry")
    if not isinstance(details, Mapping):
        raise ValueError(f"audit details of '{kind}': expected a mapping, found {type(details).__name__}")
    encode_entry(1, now or utc_now(), kind, details, GENESIS_HASH)  # refuse non-JSON before taking the lock

    layout.ensure(layout.consent_dir, CONSENT_DIR_MODE)
    with exclusive_lock(layout.lock_path):
        refuse_clear_names(details, registered_names_locked(layout))
        return append_entry_locked(layout, kind, details, now)
