"""Salvage the readable part of an MCAP file whose writer died, and rebuild a clean rosbag2 folder from it.

A recorder killed mid-episode leaves an MCAP file without its summary and footer (rosbags'
reader refuses it: "File end magic is invalid"), perhaps cut inside a chunk (a full disk,
a power cut). ``McapSalvager`` reads such a file record by record from the start and stops
at the first damage: a record cut short, an impossible opcode, a chunk that does not
decompress or fails its CRC. Chunks written without compression (rosbags' default, and the
recorder's) are salvaged message by message even when cut short, so a file truncated
mid-chunk loses only the messages past the cut.

``rebuild_bag`` writes what was salvaged into a new rosbag2 folder with rosbags' own writer:
the same topics, types, message definitions and QoS profiles, an indexed MCAP file and a
``metadata.yaml`` built from what was read, as ``ros2 bag reindex`` would. Nothing read from
the damaged file is executed or trusted beyond its bytes: type names and definitions are
copied as text.

MCAP layout (mcap.dev spec): magic ``\\x89MCAP0\\r\\n``, then records ``opcode:u8 length:u64
body``, little-endian; strings are ``u32 length + UTF-8``.
"""

from __future__ import annotations

import mmap
import os
import struct
from binascii import crc32
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import lz4.frame
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos

try:  # Python 3.14 ships zstd; rosbags pulls the backport before that.
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

MCAP_MAGIC = b"\x89MCAP0\r\n"

OP_HEADER = 0x01
OP_FOOTER = 0x02
OP_SCHEMA = 0x03
OP_CHANNEL = 0x04
OP_MESSAGE = 0x05
OP_CHUNK = 0x06
OP_DATA_END = 0x0F
_LAST_DEFINED_OPCODE = 0x0F
_FIRST_PRIVATE_OPCODE = 0x80

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_RECORD_HEADER = struct.Struct("<BQ")
_MESSAGE_HEADER = struct.Struct("<HIQQ")
_CHUNK_HEADER = struct.Struct("<QQQI")


@dataclass(frozen=True)
class SalvagedSchema:
    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class SalvagedChannel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class SalvagedMessage:
    channel_id: int
    log_time: int
    data: bytes


SalvagedRecord = SalvagedSchema | SalvagedChannel | SalvagedMessage


class _MalformedError(Exception):
    """A record whose body does not parse; stops the salvage at that record."""


class _Body:
    """Sequential little-endian reads inside one record body, raising ``_MalformedError`` past its end."""

    def __init__(self, buffer: bytes | mmap.mmap, start: int, end: int) -> None:
        self.buffer, self.pos, self.end = buffer, start, end

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > self.end:
            raise _MalformedError(f"field of {size} bytes runs past the record's end")
        data = self.buffer[self.pos : self.pos + size]
        self.pos += size
        return bytes(data)

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.take(8))[0]

    def string(self) -> str:
        try:
            return self.take(self.u32()).decode("utf-8")
        except UnicodeDecodeError as error:
            raise _MalformedError(f"string is not UTF-8 ({error.reason})") from None


@dataclass
class McapSalvager:
    """Read an MCAP file from the start up to its first damage; iterate ``records()`` once.

    After iteration: ``bytes_read`` (file offset up to which everything parsed), ``file_bytes``,
    ``damage`` (why reading stopped; empty when the data section ended cleanly), ``messages``
    (messages yielded), ``skipped_messages`` (messages for a channel never declared).
    """

    path: Path
    bytes_read: int = 0
    file_bytes: int = 0
    damage: str = ""
    messages: int = 0
    skipped_messages: int = 0
    _channels: set[int] = field(default_factory=set)

    def records(self) -> Iterator[SalvagedRecord]:
        with open(self.path, "rb") as stream:
            self.file_bytes = size = _file_size(stream)
            if size < len(MCAP_MAGIC):
                self.damage = f"{size} bytes: shorter than the MCAP magic (nothing was written)"
                return
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                if buffer[: len(MCAP_MAGIC)] != MCAP_MAGIC:
                    self.damage = "no MCAP magic at the start of the file"
                    return
                self.bytes_read = len(MCAP_MAGIC)
                yield from self._top_level(buffer, size)

    def _top_level(self, buffer: mmap.mmap, size: int) -> Iterator[SalvagedRecord]:
        pos = len(MCAP_MAGIC)
        while True:
            if pos == size:
                self.damage = f"the file ends after {size} bytes without the MCAP summary (the writer never closed it)"
                return
            if size - pos < _RECORD_HEADER.size:
                self.damage = f"record header at offset {pos} cut short ({size - pos} of 9 bytes)"
                return
            opcode, length = _RECORD_HEADER.unpack_from(buffer, pos)
            body_start = pos + _RECORD_HEADER.size
            if opcode == 0 or _LAST_DEFINED_OPCODE < opcode < _FIRST_PRIVATE_OPCODE:
                self.damage = f"invalid record opcode 0x{opcode:02x} at offset {pos} (overwritten or zeroed data)"
                return
            if length > size - body_start:
                if opcode == OP_CHUNK:
                    yield from self._partial_chunk(buffer, pos, body_start, length, size)
                else:
                    available = size - body_start
                    self.damage = f"record 0x{opcode:02x} at offset {pos} cut short: {available} of {length} bytes"
                return
            body_end = body_start + length
            try:
                if opcode == OP_CHUNK:
                    records = self._chunk_records(buffer, pos, body_start, body_end)
                    # A chunk counts only once it decompressed and parsed whole: all or nothing.
                    yield from records
                elif opcode in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
                    record = self._record(opcode, buffer, body_start, body_end)
                    if record is not None:
                        yield record
                elif opcode in (OP_DATA_END, OP_FOOTER):
                    self.bytes_read = body_end
                    return
            except _MalformedError as error:
                self.damage = f"malformed record 0x{opcode:02x} at offset {pos}: {error}"
                return
            pos = body_end
            self.bytes_read = pos

    def _chunk_records(self, buffer: mmap.mmap, pos: int, body_start: int, body_end: int) -> list[SalvagedRecord]:
        body = _Body(buffer, body_start, body_end)
        _, _, uncompressed_size, crc = _CHUNK_HEADER.unpack(body.take(_CHUNK_HEADER.size))
        compression = body.string()
        compressed = body.take(body.u64())
        try:
            raw = _decompress(compression, compressed, uncompressed_size)
        except Exception as error:  # any decoder failure means the same thing: this chunk is lost
            raise _MalformedError(f"chunk does not decompress ({compression or 'none'}: {error})") from None
        if len(raw) != uncompressed_size:
            raise _MalformedError(f"chunk holds {len(raw)} bytes, its header says {uncompressed_size}")
        if crc and crc32(raw) != crc:
            raise _MalformedError("chunk fails its CRC check")
        records: list[SalvagedRecord] = []
        inner_end, complete = self._inner_records(raw, 0, len(raw), records.append)
        if not complete:
            raise _MalformedError(f"chunk's record at byte {inner_end} runs past the chunk's end")
        return records

    def _partial_chunk(
        self, buffer: mmap.mmap, pos: int, body_start: int, length: int, size: int
    ) -> Iterator[SalvagedRecord]:
        """A chunk cut short: uncompressed ones give up the messages before the cut."""
        cut = f"chunk at offset {pos} cut short ({size - body_start} of {length} bytes)"
        try:
            body = _Body(buffer, body_start, size)
            body.take(_CHUNK_HEADER.size)
            compression = body.string()
            declared = body.u64()
        except _MalformedError:
            self.damage = f"{cut}, inside its header"
            return
        if compression:
            self.damage = f"{cut}; compressed with {compression}, so its messages are lost"
            return
        records: list[SalvagedRecord] = []
        inner_end, _ = self._inner_records(buffer, body.pos, min(size, body.pos + declared), records.append)
        yield from records
        self.bytes_read = inner_end
        salvaged = sum(isinstance(record, SalvagedMessage) for record in records)
        self.damage = f"{cut}; {salvaged} messages salvaged from it up to offset {inner_end}"

    def _inner_records(
        self, buffer: bytes | mmap.mmap, start: int, end: int, emit: Callable[[SalvagedRecord], None]
    ) -> tuple[int, bool]:
        """Parse records in ``buffer[start:end]``; returns (end of the last whole record, whether all parsed)."""
        pos = start
        while pos < end:
            if end - pos < _RECORD_HEADER.size:
                return pos, False
            opcode, length = _RECORD_HEADER.unpack_from(buffer, pos)
            body_start = pos + _RECORD_HEADER.size
            if length > end - body_start:
                return pos, False
            try:
                record = self._record(opcode, buffer, body_start, body_start + length)
            except _MalformedError:
                return pos, False
            if record is not None:
                emit(record)
            pos = body_start + length
        return pos, True

    def _record(self, opcode: int, buffer: bytes | mmap.mmap, start: int, end: int) -> SalvagedRecord | None:
        body = _Body(buffer, start, end)
        if opcode == OP_MESSAGE:
            if end - start < _MESSAGE_HEADER.size:
                raise _MalformedError(f"message record of {end - start} bytes is shorter than its header")
            channel_id, _, log_time, _ = _MESSAGE_HEADER.unpack_from(buffer, start)
            if channel_id not in self._channels:
                self.skipped_messages += 1
                return None
            self.messages += 1
            return SalvagedMessage(channel_id, log_time, bytes(buffer[start + _MESSAGE_HEADER.size : end]))
        if opcode == OP_SCHEMA:
            return SalvagedSchema(body.u16(), body.string(), body.string(), body.take(body.u32()))
        if opcode == OP_CHANNEL:
            channel_id, schema_id, topic, encoding = body.u16(), body.u16(), body.string(), body.string()
            metadata_end = body.pos + body.u32()
            metadata: dict[str, str] = {}
            while body.pos < metadata_end:
                key = body.string()
                metadata[key] = body.string()
            self._channels.add(channel_id)
            return SalvagedChannel(channel_id, schema_id, topic, encoding, metadata)
        return None


def _file_size(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size


def _decompress(compression: str, data: bytes, uncompressed_size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        return zstd.decompress(data)
    if compression == "lz4":
        return lz4.frame.decompress(data)
    raise ValueError(f"unknown compression {compression!r}")


@dataclass
class RebuiltTopic:
    """What ``rebuild_bag`` wrote for one topic."""

    type: str
    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


@dataclass
class RebuildReport:
    """The outcome of ``rebuild_bag``: per-topic counts and where and why salvage stopped."""

    topics: dict[str, RebuiltTopic]
    messages: int
    bytes_read: int
    file_bytes: int
    damage: str
    skipped_messages: int


def rebuild_bag(
    source: Path,
    target: Path,
    *,
    type_hashes: dict[str, str],
    custom_data: Callable[[RebuildReport], dict[str, str]] | None = None,
) -> RebuildReport:
    """Salvage ``source`` (an MCAP file) into a new rosbag2 folder ``target`` (must not exist).

    ``type_hashes`` maps type names to the RIHS01 hashes to record (the manifest's, from
    recording time); a channel whose type has no hash there is dropped (its messages counted
    as skipped), since a bag must not claim a type hash nobody computed. ``custom_data`` is
    called with the report before the bag is closed, to put provenance into its metadata.
    Messages keep their order and timestamps; channels whose schema was never seen are dropped
    with their messages (counted in the report).
    """
    salvager = McapSalvager(source)
    schemas: dict[int, SalvagedSchema] = {}
    connections: dict[int, Connection] = {}
    topics: dict[str, RebuiltTopic] = {}
    channel_topics: dict[int, RebuiltTopic] = {}
    writer = Writer(target, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    try:
        for record in salvager.records():
            if isinstance(record, SalvagedMessage):
                connection = connections.get(record.channel_id)
                if connection is None:
                    salvager.skipped_messages += 1
                    continue
                writer.write(connection, record.log_time, record.data)
                topic = channel_topics[record.channel_id]
                topic.count += 1
                topic.first_ns = record.log_time if topic.first_ns is None else min(topic.first_ns, record.log_time)
                topic.last_ns = record.log_time if topic.last_ns is None else max(topic.last_ns, record.log_time)
            elif isinstance(record, SalvagedSchema):
                schemas[record.id] = record
            elif isinstance(record, SalvagedChannel):
                schema = schemas.get(record.schema_id)
                type_hash = type_hashes.get(schema.name) if schema is not None else None
                if schema is None or type_hash is None or record.id in connections:
                    continue  # its messages are counted as skipped: no type, no way to decode them
                connections[record.id] = writer.add_connection(
                    record.topic,
                    schema.name,
                    msgdef=schema.data.decode("utf-8", errors="replace"),
                    rihs01=type_hash,
                    serialization_format=record.message_encoding,
                    offered_qos_profiles=_qos_of(record),
                )
                channel_topics[record.id] = topics.setdefault(record.topic, RebuiltTopic(type=schema.name))
        report = RebuildReport(
            topics=topics,
            messages=sum(topic.count for topic in topics.values()),
            bytes_read=salvager.bytes_read,
            file_bytes=salvager.file_bytes,
            damage=salvager.damage,
            skipped_messages=salvager.skipped_messages,
        )
        if custom_data is not None:
            for key, value in custom_data(report).items():
                writer.set_custom_data(key, value)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return report


def _qos_of(channel: SalvagedChannel) -> list[Qos]:
    text = channel.metadata.get("offered_qos_profiles", "")
    if not text.strip():
        return []
    try:
        return parse_qos(text)
    except Exception:  # a damaged QoS string loses the profile, not the messages
        return []
