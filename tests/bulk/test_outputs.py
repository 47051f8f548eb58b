"""The layouts: Parquet read back with pyarrow equals the JSON Lines; per-image names are the same in every
run, so that a resumed run rewrites a killed run's drawings instead of adding others."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tests.bulk.conftest import FAST, summary

from egtr.bulk.shard_formats import parquet_schema
from egtr.cli import main


def test_parquet_read_back_with_pyarrow_equals_the_json_lines(uninterrupted, tmp_path):
    # the two runs batch the same images in the same order: the values are the same, to the last bit
    assert uninterrupted["parquet"] == uninterrupted["jsonl"]
    assert len(uninterrupted["parquet"]) == 60


def test_parquet_shards_use_plain_nested_types(models, collection, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(collection / "part0"),
                "--checkpoint",
                str(models[0]),
                "--out",
                str(out),
                "--parquet",
                *FAST,
            ]
        )
        == 0
    )
    capsys.readouterr()
    table = pq.read_table(out / "shards")  # the folder as one dataset, as pandas, DuckDB and datasets read it
    assert table.schema.equals(parquet_schema())
    assert table.num_rows == 20 and table.schema.field("objects").type == pa.list_(
        parquet_schema().field("objects").type.value_type
    )
    row = table.slice(0, 1).to_pylist()[0]
    assert set(row) == {"path", "width", "height", "objects", "triplets"}
    assert set(row["triplets"][0]) == {
        "subject",
        "predicate",
        "object",
        "score",
        "subject_name",
        "predicate_name",
        "object_name",
    }
    assert summary(out)["shards"] == 1


def write(path, width, height, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_per_image_names_stay_the_same_when_a_run_resumes(models, tmp_path, capsys):
    photos = tmp_path / "photos"
    for seed, name in enumerate(("cat.jpg", "cat.png", "sub/cat.png")):
        write(photos / name, 40, 30, seed)
    write(tmp_path / "other" / "cat.jpg", 30, 40, 9)
    out = tmp_path / "out"
    command = ["predict", str(photos), str(tmp_path / "other" / "cat.jpg"), "--checkpoint", str(models[0])]
    command += ["--out", str(out), "--draw", "--draw-edges", "2", "--layout", "spring", *FAST]
    assert main(command) == 0
    names = {
        str(path.relative_to(out)): json.loads(path.read_text())["image"]
        for path in out.rglob("*.json")
        if path.stem not in ("run", "summary")
    }
    assert names == {
        "cat.json": str(photos / "cat.jpg"),
        "cat-2.json": str(photos / "cat.png"),
        "sub/cat.json": str(photos / "sub" / "cat.png"),
        "cat-3.json": str(tmp_path / "other" / "cat.jpg"),
    }
    files = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    # as a run killed after an image's drawing and before its JSON leaves it
    (out / "cat.json").unlink()
    (out / "cat-2.json").unlink()
    assert main(command) == 0
    capsys.readouterr()
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()) == files
    assert json.loads((out / "cat.json").read_text())["image"] == str(photos / "cat.jpg")
    assert (summary(out)["done_now"], summary(out)["done_before"]) == (2, 2)
