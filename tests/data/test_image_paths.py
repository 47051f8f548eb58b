"""Image names from dataset files stay inside the image folder, in every layout, for readers and the check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egtr.data import DatasetError, load_dataset
from egtr.data import problems as kinds
from egtr.data.check import check_dataset
from egtr.data.image_paths import image_path_inside


@pytest.mark.parametrize("name", ["a.jpg", "sub/dir/a.jpg", "./a.jpg", "a..b.jpg", "..a.jpg"])
def test_names_inside_the_folder_are_joined(name):
    assert image_path_inside(Path("/data/images"), name) == Path("/data/images") / name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("C:\\Windows\\win.ini", "absolute"),
        ("C:relative.jpg", "absolute"),
        ("\\\\server\\share\\a.jpg", "absolute"),
        ("../secret.jpg", "'..'"),
        ("sub/../../secret.jpg", "'..'"),
        ("..\\secret.jpg", "'..'"),
        ("a\x00.jpg", "NUL"),
    ],
)
def test_names_that_leave_the_folder_are_refused(name, reason):
    with pytest.raises(ValueError, match=reason):
        image_path_inside(Path("/data/images"), name)


def test_open_images_img_fn_that_leaves_the_folder(tmp_path, layouts):
    layouts.write_open_images(tmp_path, layouts.open_images_truth(tmp_path))
    path = tmp_path / "annotations" / "vrd-train-anno.json"
    entries = json.loads(path.read_text())
    entries[1]["img_fn"] = "../../outside"
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"\[1\]\.img_fn: path '\.\./\.\./outside\.jpg' leaves"):
        load_dataset(tmp_path, "train")
    problems = check_dataset(tmp_path, splits=["train"]).problems
    assert [(p.kind, p.image_id, p.field) for p in problems] == [
        (kinds.UNSAFE_PATH, "../../outside", "[1].img_fn")
    ]


def test_sgb_image_id_that_leaves_the_folder(tmp_path, layouts):
    layouts.write_sgb(tmp_path, layouts.sgb_truth(tmp_path))
    path = tmp_path / "image_data.json"
    entries = json.loads(path.read_text())
    entries[-2]["image_id"] = "/etc/passwd"  # the first test image (the last has no relation)
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"absolute path '/etc/passwd\.jpg' leaves the image folder"):
        load_dataset(tmp_path, "test")
    problems = check_dataset(tmp_path, splits=["test"]).problems
    assert [(p.kind, p.image_id) for p in problems] == [(kinds.UNSAFE_PATH, "/etc/passwd")]
