"""Reading a recorded episode back, without ROS: decoded messages in time order, one-line errors.

Messages are decoded with robot_brain's typestore (Kilted + ``robot_brain_msgs``, from our
own ``.msg`` files), never with definitions taken from the bag: a type recorded with another
definition than the one installed is refused by its RIHS01 hash instead of being misread.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

import yaml
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
from rosbags.typesys.store import Typestore

from robot_brain.episodes.errors import (
    EpisodeError,
    EpisodeReadError,
    EpisodeStateError,
    MissingTopicError,
)
from robot_brain.episodes.manifest import METADATA_NAME, EpisodeManifest
from robot_brain.episodes.message_types import episode_typestore


class EpisodeMessage(NamedTuple):
    """One message read back: topic, receive timestamp (UNIX ns), type name, and the message.

    ``message`` is rosbags' decoded dataclass (fields as in the ``.msg``; arrays of numbers as
    numpy arrays), or the raw CDR ``bytes`` when read with ``decode=False``.
    """

    topic: str
    timestamp_ns: int
    msgtype: str
    message: object


class EpisodeReader:
    """Reads one complete or recovered episode; made by ``EpisodeStore.open_episode``. A context manager.

    Every failure is an ``EpisodeError`` with one line naming the file: a corrupt or truncated
    bag (``EpisodeReadError``), a topic the episode lacks (``MissingTopicError``), a type
    recorded with another definition than robot_brain knows (``EpisodeReadError``).
    """

    def __init__(self, path: Path, manifest: EpisodeManifest, typestore: Typestore | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.bag_path = path / manifest.bag_file
        self.typestore = typestore if typestore is not None else episode_typestore()
        self._reader: Reader | None = None
        try:
            reader = Reader(path)
            reader.open()
        except (ReaderError, OSError, ValueError, KeyError, TypeError, struct.error) as error:
            raise EpisodeReadError(
                f"episode {manifest.episode_id}: {self._culprit(error)} is corrupt or truncated ({_one_line(error)})"
            ) from None
        self._reader = reader

    def _culprit(self, error: BaseException) -> Path:
        text = str(error)
        return self.path / METADATA_NAME if METADATA_NAME in text or "yaml" in text.lower() else self.bag_path

    @property
    def topics(self) -> dict[str, str]:
        """Topic name → type name, as in the bag."""
        return {connection.topic: connection.msgtype for connection in self._open_reader().connections}

    def message_count(self, topic: str) -> int:
        """Messages recorded on ``topic`` (``MissingTopicError`` if it was not recorded)."""
        return sum(connection.msgcount for connection in self._connections([topic]))

    def robot_description(self) -> str:
        """The URDF text the episode was recorded with."""
        path = self.path / self.manifest.robot.description_file
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise EpisodeReadError(f"episode {self.manifest.episode_id}: cannot read {path} ({error})") from None

    def messages(self, topics: Sequence[str] | None = None, *, decode: bool = True) -> Iterator[EpisodeMessage]:
        """Messages of ``topics`` (all when None) in timestamp order, decoded with robot_brain's typestore."""
        connections = self._connections(topics)
        typestore = self.typestore
        for connection in connections:
            self._check_type(connection.topic, connection.msgtype, connection.digest)
        iterator = self._open_reader().messages(connections=connections)
        while True:
            try:
                connection, timestamp, raw = next(iterator)
            except StopIteration:
                return
            except (EpisodeError, GeneratorExit):
                raise
            except Exception as error:  # rosbags raises assorted types on damaged data: all mean the same here
                raise EpisodeReadError(
                    f"episode {self.manifest.episode_id}: {self.bag_path} is corrupt or truncated ({_one_line(error)})"
                ) from None
            if not decode:
                yield EpisodeMessage(connection.topic, timestamp, connection.msgtype, bytes(raw))
                continue
            try:
                message = typestore.deserialize_cdr(raw, connection.msgtype)
            except Exception as error:
                raise EpisodeReadError(
                    f"episode {self.manifest.episode_id}: {self.bag_path}: message on {connection.topic} at "
                    f"{timestamp} ns does not decode as {connection.msgtype} ({_one_line(error)})"
                ) from None
            yield EpisodeMessage(connection.topic, timestamp, connection.msgtype, message)

    def _connections(self, topics: Sequence[str] | None) -> list[Connection]:
        reader = self._open_reader()
        if topics is None:
            return list(reader.connections)
        available = {connection.topic for connection in reader.connections}
        missing = [topic for topic in topics if topic not in available]
        if missing:
            raise MissingTopicError(
                f"episode {self.manifest.episode_id} ({self.path / METADATA_NAME}) has no topic "
                f"{', '.join(repr(t) for t in missing)}; it has {', '.join(sorted(available)) or 'none'}"
            )
        wanted = set(topics)
        return [connection for connection in reader.connections if connection.topic in wanted]

    def _check_type(self, topic: str, msgtype: str, digest: str) -> None:
        if msgtype not in self.typestore.fielddefs:
            raise EpisodeReadError(
                f"episode {self.manifest.episode_id}: topic {topic} has type {msgtype}, which robot_brain does not know"
            )
        known = self.typestore.hash_rihs01(msgtype)
        if digest and digest != known:
            raise EpisodeReadError(
                f"episode {self.manifest.episode_id}: {topic} was recorded with another definition of {msgtype} "
                f"(hash {digest[:19]}…, robot_brain has {known[:19]}…)"
            )

    def _open_reader(self) -> Reader:
        if self._reader is None:
            raise EpisodeStateError(f"episode {self.manifest.episode_id}: the reader is closed")
        return self._reader

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with suppress(Exception):
                reader.close()

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_bag_custom_data(path: Path) -> dict[str, str]:
    """The ``custom_data`` of a rosbag2 folder's ``metadata.yaml`` (``EpisodeReadError`` if unreadable)."""
    metadata_path = Path(path) / METADATA_NAME
    try:
        data = yaml.safe_load(metadata_path.read_text(encoding="utf-8"))
        custom = data["rosbag2_bagfile_information"].get("custom_data") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        raise EpisodeReadError(f"{metadata_path}: not a readable rosbag2 metadata file ({_one_line(error)})") from None
    if not isinstance(custom, dict):
        raise EpisodeReadError(f"{metadata_path}: custom_data is not a mapping")
    return {str(key): str(value) for key, value in custom.items()}
