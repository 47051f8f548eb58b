"""The annotated video of `egtr predict clip.mp4 --draw`: each sampled frame with its boxes and best triplets.

Frames are drawn with PIL (fast enough per frame, unlike the matplotlib figures of still images): the
boxes of the objects in the best triplets, labelled "<id>: <name>" in the colours of the PNG drawings,
and a panel listing those triplets. The MP4 is H.264 (libx264) when the PyAV build can encode it, else
MPEG-4 part 2; it is written to a temporary file beside the target and renamed when closed.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from egtr.inference.scene_graph import SceneGraph
from egtr.inference.visualize import drawn_parts, node_label, object_colours, text_colour

CODECS = ("libx264", "mpeg4")  # preferred first


def video_codec() -> str:
    """The first codec of CODECS this PyAV build can encode with."""
    import av

    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    raise RuntimeError(f"this PyAV build can encode none of {', '.join(CODECS)}")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def annotate_frame(image: Image.Image, graph: SceneGraph, max_triplets: int) -> Image.Image:
    """A copy of `image` with the boxes of the best `max_triplets` triplets' objects and a list of them."""
    nodes, _, _ = drawn_parts(graph, max_triplets)
    colours = dict(zip(nodes, object_colours(len(nodes))))
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas, "RGBA")
    font = _font(max(10, round(canvas.height / 36)))
    line = max(2, round(canvas.height / 240))
    for index in nodes:
        x0, y0, x1, y1 = np.clip(graph.boxes[index], 0, [canvas.width - 1, canvas.height - 1] * 2).tolist()
        rgb = tuple(round(255 * value) for value in colours[index])
        draw.rectangle((x0, y0, x1, y1), outline=rgb, width=line)
        text = node_label(graph, index)
        left, top, right, bottom = draw.textbbox((x0, y0), text, font=font)
        shift = min(bottom - top + 2, y0)  # above the box, or inside it at the top edge
        draw.rectangle((left, top - shift, right + 2, bottom - shift), fill=(*rgb, 220))
        draw.text((x0 + 1, y0 - shift), text, fill=text_colour(colours[index]), font=font)
    shown = min(max_triplets, len(graph.triplets))
    lines = [f"{graph.describe(rank)}  {graph.triplets[rank].score:.2f}" for rank in range(shown)]
    if lines:
        box = draw.multiline_textbbox((6, 6), "\n".join(lines), font=font)
        draw.rectangle((box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4), fill=(0, 0, 0, 150))
        draw.multiline_text((6, 6), "\n".join(lines), fill="white", font=font)
    return canvas


class AnnotatedVideoWriter:
    """MP4 of annotated frames at `rate` frames/s; `close()` finishes it and renames it to `path`."""

    def __init__(self, path: str | Path, rate: float) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(handle)
        self.container = av.open(self.temporary, "w", format="mp4")
        self.rate = Fraction(rate).limit_denominator(1001)
        self.stream = None
        self.frames = 0

    def write(self, image: Image.Image, graph: SceneGraph, max_triplets: int) -> None:
        import av

        frame = annotate_frame(image, graph, max_triplets)
        if self.stream is None:  # the first frame fixes the size; yuv420p needs even sides
            self.stream = self.container.add_stream(video_codec(), rate=self.rate)
            self.stream.width, self.stream.height = (
                frame.width + frame.width % 2,
                frame.height + frame.height % 2,
            )
            self.stream.pix_fmt = "yuv420p"
        if frame.size != (self.stream.width, self.stream.height):
            padded = Image.new("RGB", (self.stream.width, self.stream.height))
            padded.paste(
                frame.crop((0, 0, min(frame.width, self.stream.width), min(frame.height, self.stream.height)))
            )
            frame = padded
        for packet in self.stream.encode(av.VideoFrame.from_image(frame)):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Flush and rename to `path`; None (and nothing written) when no frame came."""
        if self.container is None:
            return self.path if self.frames else None
        try:
            if self.stream is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            self.container.close()
        finally:
            self.container = None
            if self.frames:
                os.replace(self.temporary, self.path)
            elif os.path.exists(self.temporary):
                os.unlink(self.temporary)
        return self.path if self.frames else None
