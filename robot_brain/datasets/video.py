"""Camera streams as MP4 files the way LeRobot v3.0 stores them, through PyAV only.

LeRobot encodes each episode's frames into its own MP4 (``libsvtav1``, ``yuv420p``, a
keyframe every 2 frames, ``crf`` 30, SVT preset 12) and appends it to the camera's current
file by copying packets (no re-encoding); an episode's frames are then found at
``from_timestamp + timestamp`` in that file, within 1e-4 s. This module does the same steps:

- :func:`encode_frames` encodes RGB frames (``(H, W, 3)`` uint8) with presentation times
  ``k / fps`` and **counts**: frames fed, packets the encoder produced, packets in the file
  read back. Any difference raises :class:`VideoError` (LeRobot's streaming encoder can drop
  frames silently when its queue is full; here a short video is never written as if whole).
- :func:`concatenate` appends episode files into one file by shifting packet times, and
  checks the frame count of the result.
- :func:`probe` reads what ``meta/info.json`` records about a video (codec, size, fps, ...).
- :func:`decode_at` and :func:`iter_frames` decode frames at given times, LeRobot's way:
  seek to the keyframe before the first time, decode forward, take the nearest frame and
  refuse one further than the tolerance.

SVT-AV1 prints a configuration banner on stderr for every encoder it opens; ``SVT_LOG=1``
(errors only) is set unless the environment already chose a level.

SVT-AV1 run as root puts the thread that opens it and each of its ~40 worker threads in
``SCHED_FIFO`` at priority 99 (measured: PyAV 64x64 encode as root, ``ps -L -o cls,rtprio``).
Left alone, that outranks the arm controller's loop (``SCHED_FIFO`` 80) on the same computer
while an export runs, and every process started afterwards from the exporting thread inherits
priority 99 (the data factory starts the sim and the nodes after its export). So
:func:`encode_frames` puts every thread the encoder raised back to normal scheduling as soon as
the encoder is open, and the calling thread back to what it was when it returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from robot_brain.errors import UserError
from robot_brain.scheduling import current_scheduling, demote_threads, realtime_threads, restore_scheduling

# The codecs an export may use: LeRobot's default and the widely decodable alternative.
SUPPORTED_CODECS = ("libsvtav1", "h264")
LIBSVTAV1_DEFAULT_PRESET = 12


class VideoError(UserError):
    """A video could not be encoded, concatenated or decoded as asked (one line naming the file)."""


@dataclass(frozen=True)
class VideoEncoding:
    """Encoder settings, with LeRobot's defaults (``VideoEncoderConfig``).

    ``preset`` None means the codec's LeRobot default: 12 for libsvtav1, the encoder's own
    (x264 "medium") for h264. ``threads`` None lets the codec decide (SVT-AV1 ``lp``,
    x264 ``threads``).
    """

    codec: str = "libsvtav1"
    pix_fmt: str = "yuv420p"
    g: int | None = 2
    crf: int | float | None = 30
    preset: int | str | None = None
    fast_decode: int = 0
    threads: int | None = None
    extra_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codec not in SUPPORTED_CODECS:
            raise VideoError(f"expected a video codec in {list(SUPPORTED_CODECS)}, found {self.codec!r}")
        if self.pix_fmt != "yuv420p":
            raise VideoError(f"expected pix_fmt 'yuv420p' (RGB camera frames), found {self.pix_fmt!r}")
        if self.preset is None and self.codec == "libsvtav1":
            object.__setattr__(self, "preset", LIBSVTAV1_DEFAULT_PRESET)

    def codec_options(self) -> dict[str, str]:
        """The options PyAV passes to the encoder: the same translation LeRobot makes."""
        options: dict[str, str] = {}
        if self.g is not None:
            options["g"] = str(self.g)
        if self.crf is not None:
            options["crf"] = str(self.crf)
        if self.preset is not None:
            options["preset"] = str(self.preset)
        if self.codec == "libsvtav1":
            svt_params = [f"fast-decode={max(0, min(2, self.fast_decode))}"]
            if self.threads is not None:
                svt_params.append(f"lp={self.threads}")
            options["svtav1-params"] = ":".join(svt_params)
        else:
            if self.fast_decode:
                options["tune"] = "fastdecode"
            if self.threads is not None:
                options["threads"] = str(self.threads)
        for key, value in self.extra_options.items():
            options.setdefault(key, str(value))
        return options

    def info_fields(self) -> dict[str, Any]:
        """The encoder fields LeRobot records in a video feature's ``info`` (``video.g``, ``video.crf``, ...)."""
        return {
            "video.g": self.g,
            "video.crf": self.crf,
            "video.preset": self.preset,
            "video.fast_decode": self.fast_decode,
            "video.video_backend": "pyav",
            "video.extra_options": dict(self.extra_options),
        }


@dataclass(frozen=True)
class VideoProbe:
    """What a video file's first video stream says about itself."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: int
    frames: int
    duration_s: float
    time_base: Fraction
    has_audio: bool

    def info(self) -> dict[str, Any]:
        """The stream-derived ``video.*`` fields of ``meta/info.json``, in LeRobot's order."""
        return {
            "video.height": self.height,
            "video.width": self.width,
            "video.codec": self.codec,
            "video.pix_fmt": self.pix_fmt,
            "video.fps": self.fps,
            "video.channels": 3,
            "has_audio": self.has_audio,
        }


def _quiet_svt() -> None:
    os.environ.setdefault("SVT_LOG", "1")


class _EncoderPriorityGuard:
    """Undo the real-time scheduling an encoder gives itself (SVT-AV1 as root: SCHED_FIFO 99).

    The threads already real-time are noted before the encoder opens; :meth:`encoder_opened`
    demotes every thread that became real-time since (the encoder's workers and, with them, the
    calling thread); :meth:`restore` puts the calling thread back to the policy it had.
    """

    def __init__(self) -> None:
        self._scheduling = current_scheduling()
        self._before = realtime_threads()

    def encoder_opened(self) -> None:
        demote_threads(realtime_threads() - self._before)

    def restore(self) -> None:
        restore_scheduling(self._scheduling)


def _check_frame(frame: Any, height: int, width: int, index: int, path: Path) -> np.ndarray:
    array = np.asarray(frame)
    if array.shape != (height, width, 3) or array.dtype != np.uint8:
        raise VideoError(
            f"{path.name}: expected frame {index} as ({height}, {width}, 3) uint8 RGB, "
            f"found {array.shape} {array.dtype}"
        )
    return np.ascontiguousarray(array)


def encode_frames(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    *,
    fps: int,
    height: int,
    width: int,
    encoding: VideoEncoding,
    expected_frames: int,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> int:
    """Encode RGB frames into a new MP4 at ``path``, frame ``k`` at ``k / fps`` seconds.

    ``on_frame(k, frame)`` sees every frame as it is fed (statistics are sampled there, so an
    iterator is read once). Returns the frame count; raises :class:`VideoError` when the
    iterator yields a different number than ``expected_frames``, a frame of the wrong shape,
    or when the encoder or the written file hold a different number of frames than were fed.
    """
    target = Path(path)
    if encoding.codec == "libsvtav1":
        _quiet_svt()
    fed = 0
    packets = 0
    priority = _EncoderPriorityGuard()
    try:
        with av.open(str(target), "w") as container:
            stream = container.add_stream(encoding.codec, rate=fps, options=encoding.codec_options())
            stream.pix_fmt = encoding.pix_fmt
            stream.width = width
            stream.height = height
            stream.codec_context.time_base = Fraction(1, fps)
            for frame in frames:
                if fed >= expected_frames:
                    raise VideoError(f"{target.name}: expected {expected_frames} frames, the source yields more")
                array = _check_frame(frame, height, width, fed, target)
                if on_frame is not None:
                    on_frame(fed, array)
                video_frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                video_frame.pts = fed
                video_frame.time_base = Fraction(1, fps)
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                    packets += 1
                if fed == 0:  # PyAV opens the encoder (and SVT-AV1 its threads) on the first frame
                    priority.encoder_opened()
                fed += 1
            for packet in stream.encode(None):
                container.mux(packet)
                packets += 1
    except av.FFmpegError as error:
        raise VideoError(f"{target.name}: {encoding.codec} encoding failed: {error}") from error
    finally:
        priority.restore()
    if fed != expected_frames:
        raise VideoError(f"{target.name}: expected {expected_frames} frames, the source yielded {fed}")
    if packets != fed:
        raise VideoError(f"{target.name}: {fed} frames fed to {encoding.codec} but {packets} encoded (frames dropped)")
    written = probe(target).frames
    if written != fed:
        raise VideoError(f"{target.name}: {fed} frames encoded but the file holds {written}")
    return fed


def _count_packets(stream: Any, container: Any) -> tuple[int, int | None, int | None]:
    count = 0
    first_pts: int | None = None
    end_pts: int | None = None
    for packet in container.demux(stream):
        if packet.dts is None:
            continue
        count += 1
        if packet.pts is not None:
            first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
            packet_end = packet.pts + (packet.duration or 0)
            end_pts = packet_end if end_pts is None else max(end_pts, packet_end)
    return count, first_pts, end_pts


def probe(path: str | os.PathLike[str]) -> VideoProbe:
    """Codec, pixel format, size, integer fps, frame count (packets) and duration of a video file."""
    source = Path(path)
    if not source.is_file():
        raise VideoError(f"{source}: expected a video file, found none")
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise VideoError(f"{source}: expected a video stream, found none")
            stream = container.streams.video[0]
            has_audio = bool(container.streams.audio)
            codec = stream.codec.canonical_name
            pix_fmt = stream.pix_fmt
            width, height = stream.width, stream.height
            rate = stream.base_rate or stream.average_rate
            time_base = stream.time_base
            duration = stream.duration
            frames, first_pts, end_pts = _count_packets(stream, container)
    except av.FFmpegError as error:
        raise VideoError(f"{source}: not a readable video: {error}") from error
    if duration is not None:
        duration_s = float(duration * time_base)
    elif end_pts is not None:
        duration_s = float((end_pts - (first_pts or 0)) * time_base)
    else:
        duration_s = 0.0
    return VideoProbe(
        codec=codec,
        pix_fmt=pix_fmt,
        width=width,
        height=height,
        fps=int(rate) if rate else 0,
        frames=frames,
        duration_s=duration_s,
        time_base=Fraction(time_base),
        has_audio=has_audio,
    )


def concatenate(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], fps: int) -> list[float]:
    """Append episode videos into ``output`` by copying packets; returns each input's start time (s).

    Input ``i`` starts where the frames of inputs ``0..i-1`` end (their frame count over
    ``fps``): the ``from_timestamp`` LeRobot records. All inputs must come from the same
    encoder settings (same codec, size and time base). The output's packet count must equal
    the sum of the inputs', or :class:`VideoError` is raised.
    """
    target = Path(output)
    sources = [Path(p) for p in inputs]
    if not sources:
        raise VideoError(f"{target.name}: nothing to concatenate")
    starts: list[float] = []
    total_frames = 0
    try:
        with av.open(str(target), "w") as out:
            out_stream = None
            time_base: Fraction | None = None
            offset_ticks = 0
            for source in sources:
                with av.open(str(source)) as container:
                    stream = container.streams.video[0]
                    if out_stream is None:
                        out_stream = out.add_stream_from_template(stream, opaque=True)
                        out_stream.time_base = stream.time_base
                        time_base = Fraction(stream.time_base)
                    elif Fraction(stream.time_base) != time_base:
                        raise VideoError(
                            f"{source.name}: expected time base {time_base} like the first episode, "
                            f"found {stream.time_base}"
                        )
                    ticks_per_frame = Fraction(1, fps) / time_base
                    if ticks_per_frame.denominator != 1:
                        raise VideoError(f"{source.name}: time base {time_base} cannot hold frames at {fps} fps")
                    starts.append(float(offset_ticks * time_base))
                    frames = 0
                    for packet in container.demux(stream):
                        if packet.dts is None:
                            continue
                        packet.pts = None if packet.pts is None else packet.pts + offset_ticks
                        packet.dts = packet.dts + offset_ticks
                        packet.stream = out_stream
                        out.mux(packet)
                        frames += 1
                    total_frames += frames
                    offset_ticks += frames * int(ticks_per_frame)
    except av.FFmpegError as error:
        raise VideoError(f"{target.name}: concatenation failed: {error}") from error
    written = probe(target).frames
    if written != total_frames:
        raise VideoError(f"{target.name}: {total_frames} frames copied but the file holds {written}")
    return starts


def iter_frames(
    path: str | os.PathLike[str], start_s: float, end_s: float, *, margin_s: float = 1e-4
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode the frames whose times lie in ``[start_s - margin, end_s + margin]``: (time, RGB uint8 array)."""
    source = Path(path)
    if not source.is_file():
        raise VideoError(f"{source}: expected a video file, found none")
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = stream.time_base
            target_pts = round(start_s / time_base)
            container.seek(max(0, target_pts - 1), backward=True, any_frame=False, stream=stream)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                moment = float(frame.pts * time_base)
                if moment < start_s - margin_s:
                    continue
                if moment > end_s + margin_s:
                    break
                yield moment, frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        raise VideoError(f"{source}: decoding failed: {error}") from error


def decode_at(path: str | os.PathLike[str], timestamps: Sequence[float], tolerance_s: float = 1e-4) -> np.ndarray:
    """Frames at the given file times (seconds), ``(N, H, W, 3)`` uint8 RGB, each within ``tolerance_s``.

    Like LeRobot's PyAV decoder: decode from the keyframe before the first time until a frame at
    or after the last, pick the nearest decoded frame per query, and refuse (``VideoError``) a
    query with no frame within the tolerance.
    """
    queries = np.asarray(timestamps, dtype=np.float64)
    if queries.size == 0:
        raise VideoError(f"{Path(path).name}: no timestamps to decode")
    first, last = float(queries.min()), float(queries.max())
    source = Path(path)
    if not source.is_file():
        raise VideoError(f"{source}: expected a video file, found none")
    loaded_times: list[float] = []
    loaded_frames: list[np.ndarray] = []
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = stream.time_base
            container.seek(max(0, round(first / time_base) - 1), backward=True, any_frame=False, stream=stream)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                moment = float(frame.pts * time_base)
                if moment < first - 1.0:  # far before the first query: not a candidate
                    continue
                loaded_times.append(moment)
                loaded_frames.append(frame.to_ndarray(format="rgb24"))
                if moment >= last:
                    break
    except av.FFmpegError as error:
        raise VideoError(f"{source}: decoding failed: {error}") from error
    if not loaded_frames:
        raise VideoError(f"{Path(path).name}: no frame decoded between {first:.4f} s and {last:.4f} s")
    times = np.asarray(loaded_times)
    nearest = np.abs(queries[:, None] - times[None, :]).argmin(axis=1)
    distance = np.abs(times[nearest] - queries)
    worst = int(distance.argmax())
    if distance[worst] > tolerance_s:
        raise VideoError(
            f"{Path(path).name}: expected a frame within {tolerance_s} s of {queries[worst]:.6f} s, "
            f"the nearest is at {times[nearest[worst]]:.6f} s"
        )
    return np.stack([loaded_frames[i] for i in nearest])
