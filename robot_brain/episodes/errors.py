"""Errors of the episode store: each a one-line message that names the file and the problem.

They are ``UserError`` subclasses because their causes are outside the code: a full disk, a
file cut short by a crash or a copy, a manifest edited by hand, a topic that was never
recorded. The CLI prints them as one line with exit status 2; the recorder node logs them
and publishes an ``error`` event.
"""

from __future__ import annotations

from robot_brain.errors import UserError


class EpisodeError(UserError):
    """Base class of every episode-store error."""


class UnknownEpisodeError(EpisodeError):
    """No episode with that id exists under the data root."""


class ManifestError(EpisodeError):
    """A ``manifest.json`` is missing, not JSON, or lacks fields the store needs."""


class ManifestSealError(ManifestError):
    """A ``manifest.json`` whose seal is missing, from another site, or does not match its contents.

    Its provenance (operator, consent, label) cannot be believed, so it is never exported or
    trained on; it is still listed, and a purge still erases it.
    """


class EpisodeReadError(EpisodeError):
    """A bag is corrupt or truncated, or holds data that cannot be decoded."""


class MissingTopicError(EpisodeError):
    """An episode was asked for a topic it did not record."""


class EpisodeStateError(EpisodeError):
    """The episode is not in a state that allows the operation (e.g. reading an incomplete one)."""


class EpisodeStorageError(EpisodeError):
    """Writing an episode failed at the operating-system level (I/O error, read-only disk)."""


class DiskFullError(EpisodeStorageError):
    """The disk, a quota or a file-size limit is full (ENOSPC, EDQUOT, EFBIG): recording stopped.

    What was written before stays recoverable (the next recovery scan salvages it) and every
    earlier episode is untouched.
    """
