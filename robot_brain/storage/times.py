"""Timestamps of the data factory: timezone-aware UTC, written as ISO 8601 with a ``Z``.

Consent is granted, revoked and checked at instants; comparing a naive local time with a UTC
one is the classic way to honour an expired consent for an hour, so every function here
refuses naive datetimes instead of guessing their zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def utc_now() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def require_aware(moment: datetime, what: str = "time") -> datetime:
    """``moment`` in UTC; a naive datetime is a programming error (``ValueError``), not a guess."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{what}: expected a datetime, found {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what}: expected a timezone-aware datetime, found a naive one ({moment.isoformat()})")
    return moment.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    """``2025-01-31T12:00:00.000000Z``: fixed width, sorts as text in time order."""
    return require_aware(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time_ns(time_ns: int) -> str:
    """:func:`format_time` of a UNIX time in nanoseconds (a ROS stamp, ``time.time_ns()``)."""
    seconds, nanoseconds = divmod(time_ns, 10**9)
    return format_time(datetime.fromtimestamp(seconds, tz=timezone.utc) + timedelta(microseconds=nanoseconds // 1000))


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; accepts any ISO 8601 time with an offset. ``ValueError`` otherwise."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return require_aware(moment)
