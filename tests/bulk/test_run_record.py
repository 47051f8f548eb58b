"""What a folder's results were made with (run.json): another model or other settings are refused with a
message naming each difference; what does not change results may change; --overwrite starts afresh; a folder
egtr predict did not write, or one another run is writing to, is refused."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from tests.bulk.conftest import FAST, summary

from egtr.bulk.lock import FolderLock
from egtr.cli import main


@pytest.fixture
def photos(collection, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted(collection.rglob("image*"))[:4]:
        shutil.copy(path, folder / path.name)
    return folder


def predict(capsys, *arguments) -> tuple[int, str]:
    code = main(["predict", *map(str, arguments), *FAST])
    return code, capsys.readouterr().err


def contents(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_another_checkpoint_is_refused_naming_the_model_and_overwrite_starts_afresh(
    models, photos, tmp_path, capsys
):
    out = tmp_path / "out"
    assert predict(capsys, photos, "--checkpoint", models[0], "--out", out, "--jsonl")[0] == 0
    before = contents(out)
    code, stderr = predict(capsys, photos, "--checkpoint", models[1], "--out", out, "--jsonl")
    assert code == 2
    assert f"{out} holds results of another run (the model: {models[0]} (weights sha256" in stderr
    assert f"there, {models[1]} (" in stderr and "pass --overwrite to start afresh" in stderr
    assert contents(out) == before  # refused before anything was written
    code, _ = predict(capsys, photos, "--checkpoint", models[1], "--out", out, "--jsonl", "--overwrite")
    assert code == 0
    assert summary(out)["done_before"] == 0 and summary(out)["settings"]["checkpoint"] == str(models[1])


def test_other_settings_are_refused_naming_each_flag(models, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(capsys, photos, "--checkpoint", models[0], "--out", out)[0] == 0
    code, stderr = predict(capsys, photos, "--checkpoint", models[0], "--out", out, "--top-k", 5, "--parquet")
    assert code == 2
    assert 'the output layout (--jsonl / --parquet / per-image JSON): "json" there, "parquet" now' in stderr
    assert "--top-k: 100 there, 5 now" in stderr


def test_what_does_not_change_results_may_change_and_a_moved_checkpoint_resumes(
    models, photos, tmp_path, capsys
):
    out = tmp_path / "out"
    assert predict(capsys, photos, "--checkpoint", models[0], "--out", out, "--parquet")[0] == 0
    (photos / "new.png").write_bytes((photos / sorted(os.listdir(photos))[0]).read_bytes())
    moved = shutil.copy(models[0], tmp_path / "moved.safetensors")
    flags = ["--batch-size", 1, "--workers", 0, "--shard-size", 2, "--devices", 1]
    code, stderr = predict(capsys, photos, "--checkpoint", moved, "--out", out, "--parquet", *flags)
    assert code == 0, stderr
    assert f"note: {out}: 4 of 5 images done before; predicting the other 1" in stderr
    finished = summary(out)
    assert (finished["found"], finished["done_now"], finished["done_before"], finished["committed"]) == (
        5,
        1,
        4,
        5,
    )


def test_results_without_a_run_record_are_refused_and_overwrite_removes_only_results(
    models, photos, tmp_path, capsys
):
    out = tmp_path / "mine"
    assert predict(capsys, photos, "--checkpoint", models[0], "--out", out)[0] == 0
    (out / "run.json").unlink()  # as an older egtr predict left its folder
    (out / "precious.txt").write_text("not egtr's")
    code, stderr = predict(capsys, photos, "--checkpoint", models[0], "--out", out)
    assert code == 2 and "holds results but no run.json" in stderr
    assert predict(capsys, photos, "--checkpoint", models[0], "--out", out, "--overwrite")[0] == 0
    assert (out / "precious.txt").read_text() == "not egtr's" and summary(out)["done_now"] == 4
    other = tmp_path / "other"  # a folder holding other files only: results go beside them
    other.mkdir()
    shutil.copy(models[0], other / "model.safetensors")
    assert predict(capsys, photos, "--checkpoint", other / "model.safetensors", "--out", other)[0] == 0
    assert (other / "model.safetensors").is_file() and summary(other)["done_now"] == 4


def test_a_folder_another_run_writes_to_is_refused(models, photos, tmp_path, capsys):
    out, ready = tmp_path / "out", tmp_path / "ready"
    pid = os.fork()
    if pid == 0:  # another run: holds the folder's lock for a while
        try:
            FolderLock(out).shared()
            ready.touch()
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        deadline = time.time() + 30
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.01)
        code, stderr = predict(capsys, photos, "--checkpoint", models[0], "--out", out)
        assert code == 2 and f"{out} is in use by another egtr predict" in stderr
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert predict(capsys, photos, "--checkpoint", models[0], "--out", out)[0] == 0  # the lock died with it
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["checkpoint"] == str(models[0]) and record["settings"]["layout"] == "json"
