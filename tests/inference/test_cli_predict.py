"""`egtr predict` end to end: outputs, drawings, explanations, bad files, default checkpoint, exit codes."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from egtr.cli import build_parser, main

from .conftest import write_rgb, write_with_orientation
from .test_scene_graph import check_schema

FAST = ["--size", "32", "--max-size", "64", "--no-progress"]


@pytest.fixture
def photo_folder(tmp_path):
    """Good images (JPEG, EXIF-rotated PNG, grayscale in a sub-folder) and bad ones, plus a text file."""
    folder = tmp_path / "photos"
    write_rgb(folder / "street.jpg", 64, 48)
    write_with_orientation(folder / "rotated.png", 6)
    (folder / "sub").mkdir()
    Image.new("L", (40, 30), 128).save(folder / "sub" / "gray.png")
    (folder / "notes.txt").write_text("not an image, skipped")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").touch()
    write_rgb(folder / "huge.png", 96, 96)  # above --max-pixels 5000 below
    return folder


def run_cli(capsys, *arguments):
    code = main(["predict", *map(str, arguments)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_with_bad_files_reports_each_and_predicts_the_rest(checkpoint, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "--checkpoint",
        checkpoint,
        photo_folder,
        "--out",
        out,
        "--max-pixels",
        5000,
        "--top-k",
        7,
        *FAST,
    )
    assert code == 1
    for name, reason in (
        ("corrupt.jpg", "corrupt or truncated image"),
        ("empty.png", "empty file (0 bytes)"),
        ("huge.png", "image too large: 96 x 96 = 9216 pixels"),
    ):
        assert f"egtr predict: {photo_folder / name}: {reason}" in stderr
    assert f"note: {photo_folder}: skipped 1 file(s) that are not images" in stderr
    assert "3 of 6 images predicted, 3 unreadable" in stdout
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [".lock", "rotated.json", "run.json", "street.json", "sub/gray.json", "summary.json"]
    rotated = json.loads((out / "rotated.json").read_text())
    check_schema(rotated)
    assert (rotated["width"], rotated["height"]) == (64, 40)  # pixels as stored, as officially
    assert len(rotated["triplets"]) == 7
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done_now"] == 3 and len(summary["unreadable"]) == 3
    assert summary["settings"]["exif_orientation"] is False
    assert summary["settings"]["image_conversion"] == "official"
    assert summary["settings"]["logit_adjustment"] is False
    assert {f["image"] for f in summary["unreadable"]} == {
        str(photo_folder / n) for n in ("corrupt.jpg", "empty.png", "huge.png")
    }
    assert summary["settings"]["graph_constraint"] is True and summary["settings"]["top_k"] == 7


def test_drawings_explanations_and_options(checkpoint, photo_folder, tmp_path, capsys):
    for bad in ("corrupt.jpg", "empty.png", "huge.png"):
        (photo_folder / bad).unlink()
    names = tmp_path / "names.json"
    names.write_text(
        json.dumps({"objects": [f"obj{i}" for i in range(12)], "rel": [f"rel{i}" for i in range(6)]})
    )
    out = tmp_path / "out"
    arguments = ["--checkpoint", checkpoint, photo_folder / "street.jpg", photo_folder / "sub", "--out", out]
    options = ["--draw", "--explain", "--explain-rank", 2, "--no-graph-constraint", "--dedup-iou", 0.5]
    code, stdout, stderr = run_cli(
        capsys, *arguments, *options, "--names", names, "--layout", "spring", "--json", *FAST
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["done_now"] == 2 and summary["unreadable"] == []
    assert summary["settings"]["names"] == str(names) and summary["settings"]["dedup_iou"] == 0.5
    lines = [json.loads((out / name).read_text()) for name in ("street.json", "gray.json")]
    assert [line["image"] for line in lines] == [
        str(photo_folder / "street.jpg"),
        str(photo_folder / "sub" / "gray.png"),
    ]
    for line in lines:
        check_schema(line)
        assert all(o["name"].startswith("obj") for o in line["objects"])
        assert line["explain"]["rank"] == 2 and line["explain"]["predicate"].startswith("rel")
        pairs = [(t["subject"], t["predicate"], t["object"]) for t in line["triplets"]]
        assert len(pairs) == len(set(pairs))  # de-duplicated
    for name in ("street.png", "street.explain.png", "gray.png", "gray.explain.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 300
    code, _, stderr = run_cli(capsys, *arguments, "--jsonl", "--draw", *FAST)
    assert code == 2 and "--draw and --explain write files per image" in stderr


def test_jsonl_shards_hold_the_json_of_each_image(checkpoint, photo_folder, tmp_path, capsys):
    for bad in ("corrupt.jpg", "empty.png", "huge.png"):
        (photo_folder / bad).unlink()
    arguments = ["--checkpoint", checkpoint, photo_folder, "--top-k", 4, *FAST]
    assert run_cli(capsys, *arguments, "--out", tmp_path / "json")[0] == 0
    code, stdout, stderr = run_cli(
        capsys, *arguments, "--out", tmp_path / "jsonl", "--jsonl", "--shard-size", 2
    )
    assert code == 0, stderr
    assert "3 of 3 images predicted" in stdout
    shards = sorted((tmp_path / "jsonl" / "shards").iterdir())
    assert [shard.name for shard in shards] == ["r00000-000001.jsonl", "r00000-000002.jsonl"]
    lines = [json.loads(line) for shard in shards for line in shard.read_text().splitlines()]
    for line in lines:
        name = Path(line["image"]).relative_to(photo_folder).with_suffix(".json")
        assert line == json.loads((tmp_path / "json" / name).read_text())


def test_exif_turns_photos_upright_on_request(checkpoint, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    arguments = ["--checkpoint", checkpoint, photo_folder / "rotated.png", "--out", out, "--exif"]
    code, _, stderr = run_cli(capsys, *arguments, "--top-k", 2, *FAST)
    assert code == 0, stderr
    rotated = json.loads((out / "rotated.json").read_text())
    assert (rotated["width"], rotated["height"]) == (40, 64)


def test_without_checkpoint_the_demo_model_is_used_or_explained(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    image = write_rgb(tmp_path / "one.png", 40, 30)
    code, _, stderr = run_cli(capsys, image, *FAST)
    assert code == 2
    assert "no --checkpoint given and no demo model at egtr-output/demo/model.safetensors" in stderr
    assert "run `egtr demo`" in stderr and len(stderr.strip().splitlines()) == 1
    (tmp_path / "egtr-output" / "demo").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "egtr-output" / "demo" / "model.safetensors")
    code, stdout, stderr = run_cli(capsys, image, "--top-k", 3, *FAST)
    assert "1 of 1 images predicted" in stdout
    assert code == 0, stderr
    assert (tmp_path / "egtr-output" / "predict" / "one.json").is_file()
    summary = json.loads((tmp_path / "egtr-output" / "predict" / "summary.json").read_text())
    assert summary["settings"]["checkpoint"] == "egtr-output/demo/model.safetensors"


def test_missing_inputs_empty_folders_and_bad_flags(checkpoint, tmp_path, capsys):
    code, _, stderr = run_cli(
        capsys, "--checkpoint", checkpoint, tmp_path / "nope.jpg", "--out", tmp_path / "o", *FAST
    )
    assert code == 1 and "nope.jpg: no such file or directory" in stderr
    (tmp_path / "empty").mkdir()
    code, _, stderr = run_cli(capsys, "--checkpoint", checkpoint, tmp_path / "empty", *FAST)
    assert code == 2 and "no image files found" in stderr
    image = write_rgb(tmp_path / "a.png", 40, 30)
    code, _, stderr = run_cli(capsys, "--checkpoint", checkpoint, image, "--dedup-iou", 1.5, *FAST)
    assert code == 2 and "--dedup-iou must be in [0, 1)" in stderr
    code, _, stderr = run_cli(capsys, "--checkpoint", tmp_path / "missing.safetensors", image, *FAST)
    assert code == 2 and "missing.safetensors" in stderr


def test_help_documents_every_flag_with_its_default():
    parser = build_parser()
    predict = parser._subparsers._group_actions[0].choices["predict"]
    for action in predict._actions:
        if action.option_strings and action.dest not in ("help", "debug"):
            assert "default" in action.help, action.option_strings
