"""Sources of a collection: folders, patterns and file lists in a fixed order, each image once, paths as
given; a file list is taken literally and decides nothing beyond its own lines."""

from __future__ import annotations

import os

import pytest

from egtr.bulk.sources import find_collection


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A small tree below the current folder: images, a text file, a hidden image, a nested folder."""
    monkeypatch.chdir(tmp_path)
    for name in ("a/1.jpg", "a/2.png", "a/sub/3.png", "b/4.jpg", "b/notes.txt", "a/.hidden.png", "c[1].png"):
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        with open(name, "wb") as stream:
            stream.write(b"x")
    return tmp_path


def keys(collection) -> list[str]:
    return [image.key for image in collection.images]


def test_folders_patterns_and_files_in_order_each_once(tree):
    found = find_collection(["a", "./a/1.jpg", "b/*", "a//sub/3.png"])
    assert keys(found) == ["a/1.jpg", "a/2.png", "a/sub/3.png", "b/4.jpg"]
    assert found.duplicates == 2  # ./a/1.jpg and a//sub/3.png name images already found
    assert found.skipped == {"b/*": 1}  # notes.txt: a pattern takes image files only
    assert [str(image.relative_name) for image in found.images] == ["1.jpg", "2.png", "sub/3.png", "4.jpg"]
    assert keys(find_collection(["**/*.png"])) == ["a/2.png", "a/sub/3.png", "c[1].png"]  # ** crosses folders
    assert keys(find_collection([str(tree / "a" / "sub")])) == [str(tree / "a" / "sub" / "3.png")]


def test_a_path_that_exists_is_not_a_pattern_and_what_names_nothing_is_reported(tree):
    found = find_collection(["c[1].png", "missing.jpg", "nothing*.png"])
    assert keys(found) == ["c[1].png"]
    assert found.missing == [
        {"input": "missing.jpg", "error": "no such file or directory"},
        {"input": "nothing*.png", "error": "no file matches this pattern"},
    ]


def test_a_file_list_is_read_literally_line_by_line(tree):
    listed = tree / "list.txt"
    listed.write_bytes(b"b/4.jpg\r\n\na/*.png\na\n./a/2.png\nb/notes.txt\n")
    found = find_collection(["a/2.png"], listed)
    assert keys(found) == ["a/2.png", "b/4.jpg", "b/notes.txt"]  # a listed file is tried whatever its type
    assert found.duplicates == 1
    assert found.missing == [
        {"input": "a/*.png", "error": f"no such file or directory ({listed}, line 3)"},  # no pattern
        {"input": "a", "error": f"not a file ({listed}, line 4)"},  # no folder search
    ]


def test_a_bad_file_list_is_an_error_naming_the_file_and_line(tree):
    with pytest.raises(ValueError, match="--file-list nope.txt: no such file"):
        find_collection([], "nope.txt")
    listed = tree / "list.txt"
    listed.write_bytes(b"a/1.jpg\n\xff\xfe\n")
    with pytest.raises(ValueError, match="list.txt, line 2: not UTF-8"):
        find_collection([], listed)
