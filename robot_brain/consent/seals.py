"""Seals: an HMAC under a site secret over provenance documents, so an edit made anywhere but here is detected.

A dataset's ``meta/provenance.json`` says whose episodes it holds and under which consent;
training and erasure trust it. A seal binds such a document to this site: HMAC-SHA256 under
``consent/seal.key`` (32 random bytes as hex, mode 0600, in the 0700 consent folder, created on
first use) over a purpose string and the document's exact bytes. Whoever can write a dataset
but not read the consent folder cannot forge one; the site user can (the key is theirs).

The key is not the pseudonym key (``site.key``): ``consent forget`` retires that one so a name
no longer re-derives a pseudonym, and seals made before must stay checkable.

A seal is one line of text: ``hmac-sha256:<key id>:<64 hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

from robot_brain.errors import UserError
from robot_brain.storage.files import DataFileError, create_secret_file, exclusive_lock
from robot_brain.storage.paths import CONSENT_DIR_MODE, DataLayout

SEAL_KEY_NAME = "seal.key"
SEAL_SCHEME = "hmac-sha256"
_CONTEXT = b"robot_brain.seal.v1\0"
_KEY_ID_CONTEXT = b"robot_brain.seal-key-id.v1\0"
_SEAL_PATTERN = re.compile(rf"{SEAL_SCHEME}:(k-[0-9a-f]{{12}}):([0-9a-f]{{64}})")


class SealError(UserError):
    """A document whose seal is missing, malformed, from another site's key, or does not match it."""


def seal_key_path(layout: DataLayout) -> Path:
    return layout.consent_dir / SEAL_KEY_NAME


def _key_id(key: bytes) -> str:
    return "k-" + hashlib.sha256(_KEY_ID_CONTEXT + key).hexdigest()[:12]


def _read_key(path: Path) -> bytes | None:
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataFileError(f"{path}: cannot read the seal key ({error.strerror or error})") from error
    if not re.fullmatch(rb"[0-9a-f]{64}", text):
        raise DataFileError(f"{path}: expected the seal key as 64 lowercase hex digits; restore it from a backup")
    return bytes.fromhex(text.decode("ascii"))


def _key(layout: DataLayout, *, create: bool) -> bytes | None:
    path = seal_key_path(layout)
    key = _read_key(path)
    if key is not None or not create:
        return key
    layout.ensure(layout.consent_dir, CONSENT_DIR_MODE)
    with exclusive_lock(layout.lock_path):
        key = _read_key(path)  # another process may have made it meanwhile
        if key is not None:
            return key
        key = secrets.token_bytes(32)
        create_secret_file(path, key.hex().encode("ascii") + b"\n", what="the seal key")
    return key


def _mac(key: bytes, purpose: str, data: bytes) -> str:
    return hmac.new(key, _CONTEXT + purpose.encode("utf-8") + b"\0" + data, hashlib.sha256).hexdigest()


def seal(layout: DataLayout, purpose: str, data: bytes) -> str:
    """The seal of ``data`` for ``purpose`` (e.g. ``"dataset-provenance"``), creating the key on first use."""
    key = _key(layout, create=True)
    assert key is not None
    return f"{SEAL_SCHEME}:{_key_id(key)}:{_mac(key, purpose, data)}"


def check_seal(layout: DataLayout, purpose: str, data: bytes, text: str | None, *, what: str) -> None:
    """:class:`SealError` naming ``what`` unless ``text`` is this site's seal of ``data`` for ``purpose``."""
    if text is None:
        raise SealError(f"{what}: expected a seal, found none (not written by this site's export, or removed)")
    found = _SEAL_PATTERN.fullmatch(text.strip())
    if found is None:
        raise SealError(f"{what}: expected a seal '{SEAL_SCHEME}:k-…:<64 hex>', found something else")
    key = _key(layout, create=False)
    if key is None:
        raise SealError(f"{what}: sealed, but this site has no seal key at {seal_key_path(layout)} to check it")
    if found.group(1) != _key_id(key):
        raise SealError(f"{what}: sealed by another key ({found.group(1)}), not this site's ({_key_id(key)})")
    if not hmac.compare_digest(found.group(2), _mac(key, purpose, data)):
        raise SealError(f"{what}: the content does not match its seal: it was edited after it was sealed")
