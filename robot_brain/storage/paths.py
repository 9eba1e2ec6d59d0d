"""Where the data factory keeps its files: one data root, one layout, one resolver for everyone.

Every tool that reads or writes consent, episodes or datasets resolves the root through
:func:`resolve_data_root` (or :meth:`DataLayout.resolve`), so ``--data-root``, the
``ROBOT_BRAIN_DATA_ROOT`` environment variable and the default agree everywhere, and tests
or CI can point the whole factory at a temporary folder without touching the home folder.

Layout under the root::

    consent/      the consent registry, the site key, the audit log (mode 0700: holds names)
    episodes/     one rosbag2/MCAP folder per recorded episode (the episode store)
    datasets/     exported LeRobot datasets

Nothing here creates folders: readers must not conjure an empty data root out of a typo;
writers call :meth:`DataLayout.ensure` for the folder they write.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from robot_brain.errors import UserError

DATA_ROOT_ENV = "ROBOT_BRAIN_DATA_ROOT"
"""Environment variable that overrides the default data root (``--data-root`` overrides both)."""

DEFAULT_DATA_ROOT = "~/.local/share/robot_brain"
"""The data root when neither ``--data-root`` nor ``ROBOT_BRAIN_DATA_ROOT`` is given."""

DATA_ROOT_HELP = (
    f"data folder holding consent/, episodes/ and datasets/ (default: ${DATA_ROOT_ENV} when set, "
    f"else {DEFAULT_DATA_ROOT})"
)

CONSENT_DIR_MODE = 0o700
"""The consent folder holds clear names and the site key: only the site user may enter it."""


class DataRootError(UserError):
    """The data root (or a folder in it) is missing, not a folder, or cannot be created."""


def resolve_data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The absolute data root: ``explicit``, else ``$ROBOT_BRAIN_DATA_ROOT``, else the default.

    ``~`` is expanded and relative paths are made absolute against the current folder, so the
    same value means the same folder for every process a tool starts. Empty strings count as
    unset. The folder need not exist.
    """
    chosen = os.fspath(explicit) if explicit is not None and os.fspath(explicit) != "" else None
    if chosen is None:
        chosen = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(os.path.abspath(os.path.expanduser(chosen)))


@dataclass(frozen=True)
class DataLayout:
    """The paths of one data root. Pure path arithmetic: nothing is read or created."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | DataLayout | None = None) -> DataLayout:
        """The layout of ``explicit`` (a path, a layout, or ``None`` for env/default)."""
        if isinstance(explicit, DataLayout):
            return explicit
        return cls(resolve_data_root(explicit))

    @property
    def consent_dir(self) -> Path:
        return self.root / "consent"

    @property
    def episodes_dir(self) -> Path:
        return self.root / "episodes"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def registry_path(self) -> Path:
        """Operators (clear names included) and their consent records: the only file with names."""
        return self.consent_dir / "registry.json"

    @property
    def key_path(self) -> Path:
        """The per-site HMAC key that derives pseudonyms (mode 0600, never printed)."""
        return self.consent_dir / "site.key"

    @property
    def audit_log_path(self) -> Path:
        """The hash-chained audit log (JSON lines, append-only)."""
        return self.consent_dir / "audit.jsonl"

    @property
    def audit_head_path(self) -> Path:
        """The last audit entry's number and hash, so a truncated tail is detected too."""
        return self.consent_dir / "audit.head"

    @property
    def lock_path(self) -> Path:
        """fcntl lock that serialises every writer of the consent folder (registry and audit log)."""
        return self.consent_dir / ".lock"

    def require_root(self) -> Path:
        """The root, or a :class:`DataRootError` naming it when it is missing or not a folder."""
        if not self.root.exists():
            raise DataRootError(
                f"data root {self.root} does not exist (expected a folder; set --data-root or ${DATA_ROOT_ENV})"
            )
        if not self.root.is_dir():
            raise DataRootError(f"data root {self.root} is not a folder")
        return self.root

    def ensure(self, folder: Path, mode: int = 0o755) -> Path:
        """Create ``folder`` (and the root) when missing; a :class:`DataRootError` names what failed.

        ``mode`` applies to ``folder`` only when this call creates it; an existing folder's mode is
        left alone (the caller decides whether to warn).
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=mode, parents=True, exist_ok=True)
        except FileExistsError as error:
            raise DataRootError(f"{error.filename}: expected a folder, found a file") from error
        except OSError as error:
            raise DataRootError(f"cannot create folder {folder}: {error.strerror or error}") from error
        if not folder.is_dir():
            raise DataRootError(f"{folder}: expected a folder, found a file")
        return folder


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-root DIR`` (default ``None``: resolve with :func:`resolve_data_root`)."""
    parser.add_argument("--data-root", metavar="DIR", default=None, help=DATA_ROOT_HELP)


def bare_file_name(text: str) -> bool:
    """Whether ``text`` names a file in its own folder: no separator, not ``.``/``..``, no NUL (what a
    manifest's file fields must be, so that an edited file cannot point a reader anywhere else)."""
    return bool(text) and text not in (".", "..") and "/" not in text and "\\" not in text and "\0" not in text


def confined(base: Path, relative: str) -> Path | None:
    """``base / relative`` when it stays inside ``base`` (symbolic links resolved), else ``None``."""
    if not relative or Path(relative).is_absolute() or "\0" in relative:
        return None
    root = base.resolve()
    target = (base / relative).resolve()
    return target if target == root or root in target.parents else None
