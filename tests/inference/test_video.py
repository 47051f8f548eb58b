"""Videos: frame sampling, corrupt packets skipped and counted, `egtr predict clip.mp4` JSONL and MP4."""

import json

import av
import numpy as np
import pytest
from PIL import Image

from egtr.inference.scene_graph import SceneGraph
from egtr.inference.video import VideoFrames, VideoReadError, is_video
from egtr.inference.video_output import annotate_frame, video_codec

from .conftest import write_rgb
from .test_cli_predict import run_cli
from .test_scene_graph import check_schema, example_graph

FRAMES, RATE, WIDTH, HEIGHT = 30, 10, 96, 64
FAST = ["--size", "32", "--max-size", "64", "--no-progress"]


def moving_square(index: int) -> np.ndarray:
    pixels = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    pixels[..., 0] = 8 * index
    left = (3 * index) % (WIDTH - 16)
    pixels[20:40, left : left + 16] = 255
    return pixels


def write_clip(path, frames: int = FRAMES, rate: int = RATE):
    """A short H.264 (or MPEG-4) clip of a square moving over a changing background."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(video_codec(), rate=rate)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(moving_square(index), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def corrupt_packets(path, first: int, count: int):
    """Overwrite the payload of `count` packets from the `first` (in file order) with noise."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(0)
    for position, size in packets[first : first + count]:
        data[position + 4 : position + size] = noise.integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture(scope="module")
def corrupt_clip(tmp_path_factory):
    path = write_clip(tmp_path_factory.mktemp("video") / "broken.mp4")
    return corrupt_packets(path, 12, 4)


def test_all_frames_come_with_their_index_and_time(clip):
    frames = VideoFrames(clip)
    seen = list(frames)
    assert [frame.index for frame in seen] == list(range(FRAMES))
    assert [frame.time for frame in seen] == pytest.approx([i / RATE for i in range(FRAMES)])
    assert (frames.decoded, frames.sampled, frames.skipped, frames.expected_frames) == (
        FRAMES,
        FRAMES,
        0,
        FRAMES,
    )
    assert seen[7].image.size == (WIDTH, HEIGHT) and seen[7].image.mode == "RGB"
    # the decoded picture is the one written (lossy codec: close, not equal)
    assert np.abs(np.asarray(seen[7].image, np.int16) - moving_square(7)).mean() < 8


@pytest.mark.parametrize(
    ("options", "indices"),
    [
        ({"every": 4}, list(range(0, FRAMES, 4))),
        ({"fps": 2.5}, list(range(0, FRAMES, 4))),  # one frame per 0.4 s
        ({"fps": 3}, [0, 4, 7, 10, 14, 17, 20, 24, 27]),  # the first frame of each 1/3 s
        ({"fps": 50}, list(range(FRAMES))),  # above the stream's rate: every frame
    ],
)
def test_sampling_by_step_or_by_timestamp(clip, options, indices):
    frames = VideoFrames(clip, **options)
    assert [frame.index for frame in frames] == indices
    assert frames.expected_samples() == pytest.approx(len(indices), abs=1)


def test_corrupt_packets_are_skipped_counted_and_indices_stay_true(corrupt_clip):
    frames = VideoFrames(corrupt_clip)
    indices = [frame.index for frame in frames]
    assert frames.skipped >= 1 and len(frames.errors) == frames.skipped
    assert frames.decoded == len(indices) < FRAMES
    assert indices == sorted(set(indices)) and indices[0] == 0 and indices[-1] <= FRAMES - 1
    assert set(range(5)) <= set(indices)  # frames before the damage decode


def test_a_container_breaking_off_ends_the_video_with_one_skip(clip):
    class BreaksAfterTwo:
        def demux(self, stream):
            yield from ("packet 0", "packet 1")
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    frames = VideoFrames(clip)
    assert list(frames._packets(BreaksAfterTwo(), None)) == ["packet 0", "packet 1"]
    assert frames.skipped == 1 and frames.errors[0].startswith("reading stopped after 0 frames: ")


def test_bad_videos_and_options_are_refused_by_name(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoReadError, match=r"notes.mp4: not a video PyAV can read"):
        VideoFrames(text)
    with pytest.raises(VideoReadError, match=r"gone.mp4: no such file"):
        VideoFrames(tmp_path / "gone.mp4")
    with pytest.raises(ValueError, match="either every or fps"):
        VideoFrames(clip, every=2, fps=1.0)
    with pytest.raises(ValueError, match="every must be at least 1"):
        VideoFrames(clip, every=0)
    assert is_video("a/B.MP4") and is_video("x.mkv") and not is_video("x.png")


def test_annotated_frame_has_boxes_in_the_object_colours():
    graph = SceneGraph.from_dict(example_graph().to_dict())
    image = Image.new("RGB", (graph.width, graph.height), "white")
    drawn = np.asarray(annotate_frame(image, graph, max_triplets=2))
    assert drawn.shape == (graph.height, graph.width, 3) and (drawn != 255).any()
    assert np.asarray(image).min() == 255  # the input is left alone


def test_predict_a_clip_writes_jsonl_and_a_readable_mp4(checkpoint, clip, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys, clip, "--checkpoint", checkpoint, "--out", out, "--every", 3, "--draw", "--top-k", 5, *FAST
    )
    assert code == 0, stderr
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(0, FRAMES, 3))
    assert [line["time"] for line in lines] == pytest.approx([i / RATE for i in range(0, FRAMES, 3)])
    for line in lines:
        assert set(line) == {"frame", "time", "graph"} and len(line["graph"]["triplets"]) == 5
        check_schema(line["graph"])
        assert line["graph"]["image"] == f"{clip}#frame={line['frame']}"
        assert (line["graph"]["width"], line["graph"]["height"]) == (WIDTH, HEIGHT)
    with av.open(str(out / "clip.mp4")) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.name in ("h264", "mpeg4")
        assert float(stream.average_rate) == pytest.approx(RATE / 3, rel=0.01)
    assert len(decoded) == len(lines) and decoded[0].shape == (HEIGHT, WIDTH, 3)
    summary = json.loads((out / "summary.json").read_text())
    (video,) = summary["videos"]
    assert (video["frames_decoded"], video["frames_predicted"], video["frames_skipped"]) == (FRAMES, 10, 0)
    assert video["drawing"] == str(out / "clip.mp4") and summary["failed_videos"] == []
    assert "10 frames of 1 video(s)" in stdout


def test_a_corrupt_clip_is_predicted_around_the_damage_with_exit_code_1(
    checkpoint, corrupt_clip, tmp_path, capsys
):
    out = tmp_path / "out"
    photo = write_rgb(tmp_path / "broken.png")  # same stem as the video: outputs must not collide
    code, _, stderr = run_cli(capsys, corrupt_clip, photo, "--checkpoint", checkpoint, "--out", out, *FAST)
    assert code == 1
    assert f"{corrupt_clip}: " in stderr and "corrupt frame(s) skipped" in stderr
    summary = json.loads((out / "summary.json").read_text())
    (video,) = summary["videos"]
    lines = (out / f"{video['jsonl'].split('/')[-1]}").read_text().splitlines()
    assert video["frames_skipped"] >= 1 and len(lines) == video["frames_predicted"] == video["frames_decoded"]
    assert [failure["video"] for failure in summary["failed_videos"]] == [str(corrupt_clip)]
    assert summary["done_now"] == 1 and (out / "broken.json").is_file()
    assert {video["jsonl"].split("/")[-1], "broken.json"} <= {path.name for path in out.iterdir()}


def test_an_unreadable_video_fails_alone(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.mov"
    bad.write_bytes(b"\x00" * 100)
    good = write_rgb(tmp_path / "good.png")
    code, _, stderr = run_cli(capsys, bad, good, "--checkpoint", checkpoint, "--out", tmp_path / "out", *FAST)
    assert code == 1 and "bad.mov: not a video PyAV can read" in stderr
    assert (tmp_path / "out" / "good.json").is_file()
