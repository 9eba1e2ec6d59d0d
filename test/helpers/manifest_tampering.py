"""Shared pieces of the manifest-seal tests (no tests here): what someone who can write the data root does.

Each attack changes a real episode folder the way an editor, a script or a forger's own
robot_brain site would, without the site's ``consent/seal.key``. ``ATTACKS`` maps a name to
(the attack, text the refusal must contain); an attack takes the episode folder, another
episode's folder of the same site (a donor) and a scratch folder, and returns the file it changed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from robot_brain.episodes.manifest import (
    CUSTOM_DATA_KEY,
    MANIFEST_NAME,
    METADATA_NAME,
    SEAL_FIELD,
    load_manifest,
    write_manifest,
)

SCRIPTED = {"operator": "scripted", "operator_kind": "scripted"}


def _rewrite(folder: Path, change: Callable[[dict], None]) -> Path:
    path = folder / MANIFEST_NAME
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def edit_manifest(folder: Path, **changes: object) -> Path:
    """Change fields of ``manifest.json`` by hand, its seal left as it was."""
    return _rewrite(folder, lambda document: document.update(changes))


def remove_seal(folder: Path) -> Path:
    return _rewrite(folder, lambda document: document.pop(SEAL_FIELD))


def copy_seal(folder: Path, donor: Path) -> Path:
    """Put another episode's (valid) seal on this manifest."""
    seal = json.loads((donor / MANIFEST_NAME).read_text(encoding="utf-8"))[SEAL_FIELD]
    return edit_manifest(folder, seal=seal)


def forge_with_another_site(folder: Path, scratch: Path) -> Path:
    """A forger's own robot_brain site (data root ``scratch``) seals the manifest made ``scripted``; copied in."""
    elsewhere = scratch / "episodes" / folder.name
    shutil.copytree(folder, elsewhere)
    forged = load_manifest(folder)
    forged.operator, forged.operator_kind, forged.consent.id = "scripted", "scripted", None
    write_manifest(elsewhere, forged)
    shutil.copy(elsewhere / MANIFEST_NAME, folder / MANIFEST_NAME)
    return folder / MANIFEST_NAME


def edit_bag_copy(folder: Path, **changes: object) -> Path:
    """Change fields of the manifest copy in ``metadata.yaml``'s custom data, its seal left as it was."""
    path = folder / METADATA_NAME
    metadata = yaml.safe_load(path.read_text(encoding="utf-8"))
    custom = metadata["rosbag2_bagfile_information"]["custom_data"]
    document = json.loads(custom[CUSTOM_DATA_KEY])
    document.update(changes)
    custom[CUSTOM_DATA_KEY] = json.dumps(document, separators=(",", ":"))
    path.write_text(yaml.safe_dump(metadata), encoding="utf-8")
    return path


MISMATCH = "the content does not match its seal"
ATTACKS: dict[str, tuple[Callable[[Path, Path, Path], Path], str]] = {
    "operator made scripted": (lambda folder, donor, scratch: edit_manifest(folder, **SCRIPTED), MISMATCH),
    "label changed": (lambda folder, donor, scratch: edit_manifest(folder, label="failure"), MISMATCH),
    "seal deleted": (lambda folder, donor, scratch: remove_seal(folder), "it has no seal"),
    "seal of another episode": (lambda folder, donor, scratch: copy_seal(folder, donor), MISMATCH),
    "another site's key": (lambda folder, donor, scratch: forge_with_another_site(folder, scratch),
                           "sealed by another key"),
}
