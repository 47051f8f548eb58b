"""Scene graphs of videos: sampled frames -> the predictor -> one JSON line per frame (+ an annotated MP4).

Frames are decoded with PyAV (the `video` extra) in presentation order. A frame's index is its position in
the video, `round(time * frame rate)` from its timestamp (a running count when the stream has no rate),
so indices stay true when frames before it were corrupt; its time is in seconds from the stream start.
Sampling: every frame (default), every Nth frame (`every`: index % N == 0), or `fps` frames per second
(the first frame in each 1/fps interval). A packet the decoder rejects is skipped and counted; a video
that cannot be opened is an error naming the file. Lines: `{"frame", "time", "graph"}` where `graph` is
`SceneGraph.to_dict()` with image `<video>#frame=<index>`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from egtr.inference.output import JsonLinesWriter
from egtr.inference.progress import track

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


class VideoReadError(ValueError):
    """A video that cannot be opened or has no video stream; the message starts with its path."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _av():
    try:
        import av
    except ImportError as error:
        raise VideoReadError(f'reading videos needs PyAV: pip install "egtr[video]" ({error})') from error
    return av


@dataclass
class VideoFrame:
    index: int  # position in the video
    time: float  # seconds from the stream start
    image: Image.Image  # RGB


@dataclass
class VideoFrames:
    """The sampled frames of a video, counting what was decoded, kept and skipped while iterating."""

    path: Path
    every: int | None = None
    fps: float | None = None
    decoded: int = 0  # frames the decoder returned
    sampled: int = 0  # frames yielded
    skipped: int = 0  # packets the decoder rejected and frames that could not be converted
    errors: list[str] = field(default_factory=list)  # one message per skip (the first few are reported)
    rate: float | None = None  # frames per second of the stream, when known
    expected_frames: int | None = None  # frames in the stream, when the container says

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.every is not None and self.fps is not None:
            raise ValueError("give either every or fps, not both")
        if self.every is not None and self.every < 1:
            raise ValueError(f"every must be at least 1, got {self.every}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.rate = float(rate) if rate else None
            self.expected_frames = stream.frames or (
                round(float(stream.duration * stream.time_base) * self.rate)
                if stream.duration and self.rate
                else None
            )

    def _open(self):
        av = _av()
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: no such file")
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as error:
            raise VideoReadError(f"{self.path}: not a video PyAV can read ({error})") from error
        if not container.streams.video:
            container.close()
            raise VideoReadError(f"{self.path}: has no video stream")
        return container

    def expected_samples(self) -> int:
        """About how many frames sampling will keep (0 when the length is unknown), for progress bars."""
        if not self.expected_frames:
            return 0
        if self.every is not None:
            return math.ceil(self.expected_frames / self.every)
        if self.fps is not None and self.rate:
            return math.ceil(self.expected_frames / self.rate * min(self.fps, self.rate))
        return self.expected_frames

    def output_rate(self) -> float:
        """Frames per second of the sampled sequence (for the annotated video)."""
        rate = self.rate or 25.0
        if self.every is not None:
            return rate / self.every
        return min(self.fps, rate) if self.fps is not None else rate

    def _keep(self, index: int, seconds: float, last_bucket: int) -> tuple[bool, int]:
        if self.every is not None:
            return index % self.every == 0, last_bucket
        if self.fps is not None:
            bucket = math.floor(seconds * self.fps + 1e-6)
            return bucket > last_bucket, max(bucket, last_bucket)
        return True, last_bucket

    def __iter__(self) -> Iterator[VideoFrame]:
        av = _av()
        with self._open() as container:
            stream = container.streams.video[0]
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            last_bucket, count = -1, 0
            for packet in self._packets(container, stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as error:
                    self.skip(f"packet at {packet.pts}: {error}")
                    count += 1
                    continue
                for frame in frames:
                    seconds = max(float(frame.time) - start, 0.0) if frame.time is not None else None
                    index = round(seconds * self.rate) if seconds is not None and self.rate else count
                    count = index + 1
                    self.decoded += 1
                    seconds = seconds if seconds is not None else index / (self.rate or 25.0)
                    keep, last_bucket = self._keep(index, seconds, last_bucket)
                    if not keep:
                        continue
                    try:
                        image = frame.to_image().convert("RGB")
                    except (av.error.FFmpegError, ValueError) as error:
                        self.skip(f"frame {index}: {error}")
                        continue
                    self.sampled += 1
                    yield VideoFrame(index, round(seconds, 6), image)

    def _packets(self, container, stream) -> Iterator:
        """The stream's packets; a container that breaks off mid-way ends the video with one skip."""
        av = _av()
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as error:
                self.skip(f"reading stopped after {self.decoded} frames: {error}")
                return
            yield packet

    def skip(self, message: str) -> None:
        """Count one frame that could not be used."""
        self.skipped += 1
        self.errors.append(message)


def predict_video(
    predictor,
    path: str | Path,
    stem: str | Path,
    every: int | None = None,
    fps: float | None = None,
    draw_triplets: int | None = None,
    progress: bool = True,
) -> dict:
    """Predict the sampled frames of `path`; write `<stem>.jsonl` and, with `draw_triplets`, `<stem>.mp4`
    showing the boxes and best triplets of each sampled frame. Returns the summary entry of the video."""
    from egtr.inference.video_output import AnnotatedVideoWriter

    frames = VideoFrames(Path(path), every, fps)
    stem = Path(stem)
    started = time.perf_counter()
    positions: list[tuple[int, float]] = []  # (frame index, time) of each frame handed to the predictor
    predicted = 0

    def images() -> Iterator[Image.Image]:
        for frame in frames:
            positions.append((frame.index, frame.time))
            yield frame.image

    lines = JsonLinesWriter(f"{stem}.jsonl")
    writer = AnnotatedVideoWriter(f"{stem}.mp4", frames.output_rate()) if draw_triplets else None
    try:  # finished frames are kept even when the run is interrupted: both files are closed below
        results = predictor.iter_predict(images())
        for result in track(results, frames.expected_samples(), f"{Path(path).name}: frames", progress):
            index, seconds = positions[result.index]
            if result.error is not None:
                frames.skip(f"frame {index}: {result.error}")
                continue
            graph = result.graph
            graph.source = f"{path}#frame={index}"
            lines.write({"frame": index, "time": seconds, "graph": graph.to_dict()})
            predicted += 1
            if writer is not None:
                writer.write(result.image, graph, draw_triplets)
    finally:
        jsonl = lines.close()
        drawing = writer.close() if writer is not None else None
    entry = {
        "video": str(path),
        "frames_decoded": frames.decoded,
        "frames_predicted": predicted,
        "frames_skipped": frames.skipped,
        "seconds": round(time.perf_counter() - started, 3),
        "jsonl": str(jsonl),
    }
    if drawing is not None:
        entry["drawing"] = str(drawing)
    if frames.errors:
        entry["skip_reasons"] = frames.errors[:5]
    return entry
