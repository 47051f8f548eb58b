"""Finding image files in the inputs of `egtr predict`, and naming and writing the outputs."""

import json
from pathlib import Path

from egtr.inference.image_files import find_images
from egtr.inference.output import JsonLinesWriter, OutputNames

from .conftest import write_rgb


def test_directories_are_searched_recursively_in_sorted_order(tmp_path):
    folder = tmp_path / "photos"
    for name in ("b.jpg", "a.PNG", "sub/c.webp", "sub/deeper/d.tif"):
        write_rgb(folder / name, 8, 8)
    (folder / "notes.txt").write_text("x")
    (folder / "sub" / "data.csv").write_text("x")
    write_rgb(folder / ".hidden" / "e.jpg", 8, 8)
    write_rgb(folder / ".f.jpg", 8, 8)
    single = write_rgb(tmp_path / "single.weird", 8, 8, format="PNG")
    found = find_images([folder, single, tmp_path / "missing.jpg"])
    assert [str(f.relative_name) for f in found.files] == [
        "a.PNG",
        "b.jpg",
        "sub/c.webp",
        "sub/deeper/d.tif",
        "single.weird",  # named directly: attempted whatever its extension
    ]
    assert found.files[2].path == folder / "sub" / "c.webp"
    assert found.skipped == {folder: 2}
    assert found.missing == [tmp_path / "missing.jpg"]


def test_output_names_keep_folders_and_never_collide():
    names = OutputNames(reserved=("summary",), extras=("explain",))
    assert names.claim("cat.jpg") == Path("cat")
    assert names.claim("cat.png") == Path("cat-2")
    assert names.claim("CAT.gif") == Path("CAT-3")  # names compare case-insensitively
    assert names.claim("sub/cat.jpg") == Path("sub/cat")
    assert names.claim("summary.jpg") == Path("summary-2")
    assert names.claim("cat.explain.jpg") == Path("cat.explain-2")  # cat's explanation takes cat.explain


def test_json_lines_appear_only_when_closed(tmp_path):
    writer = JsonLinesWriter(tmp_path / "p.jsonl")
    writer.write({"a": 1})
    writer.write({"b": [1.5]})
    assert not (tmp_path / "p.jsonl").exists()
    writer.close()
    writer.close()
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"b": [1.5]}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]
