"""The shard formats of a labelled collection: JSON Lines and Parquet.

- `jsonl`: one line per image, the JSON `egtr predict` writes for an image (`SceneGraph.to_dict`).
- `parquet`: one row per image with the columns `path` (the JSON's `image`), `width`, `height`, `objects`
  (list of struct id, label, name, score, box [x0, y0, x1, y1], query) and `triplets` (list of struct
  subject, predicate, object, score, subject_name, predicate_name, object_name): the same values as the JSON
  (scores and boxes as float64, so they read back equal), in plain Parquet types (string, int32, float64,
  list, struct) that pandas, DuckDB and Hugging Face `datasets` read. Needs pyarrow (the `parquet` extra).

Each format writes a shard to a binary stream (the commit protocol, index.py, makes it atomic) and reads
back the images a shard holds (to rebuild an index entry).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from egtr.export.formats import missing_extra

DEFAULT_SHARD_SIZE = 1000  # images per shard


@dataclass(frozen=True)
class ShardFormat:
    name: str  # the layout name (--jsonl, --parquet)
    suffix: str
    write: Callable[[list[dict], IO[bytes]], None]  # graphs (SceneGraph.to_dict) -> one shard
    read_images: Callable[[Path], list[str]]  # the images a shard holds, in order


def _write_jsonl(graphs: list[dict], stream: IO[bytes]) -> None:
    stream.write("".join(json.dumps(graph) + "\n" for graph in graphs).encode("utf-8"))


def _read_jsonl_images(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["image"] for line in lines if line.strip()]


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise missing_extra("--parquet", "parquet", error) from error
    return pyarrow, pyarrow.parquet


def parquet_schema():
    """The Parquet schema of a shard (see the module docstring)."""
    pa, _ = _pyarrow()
    box = pa.list_(pa.float64())
    objects = pa.struct(
        [
            ("id", pa.int32()),
            ("label", pa.int32()),
            ("name", pa.string()),
            ("score", pa.float64()),
            ("box", box),
            ("query", pa.int32()),
        ]
    )
    triplets = pa.struct(
        [
            ("subject", pa.int32()),
            ("predicate", pa.int32()),
            ("object", pa.int32()),
            ("score", pa.float64()),
            ("subject_name", pa.string()),
            ("predicate_name", pa.string()),
            ("object_name", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("path", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("objects", pa.list_(objects)),
            ("triplets", pa.list_(triplets)),
        ]
    )


def parquet_row(graph: dict) -> dict:
    """One image's row: the JSON's fields, `image` named `path`."""
    return {
        "path": graph["image"],
        "width": graph["width"],
        "height": graph["height"],
        "objects": graph["objects"],
        "triplets": graph["triplets"],
    }


def _write_parquet(graphs: list[dict], stream: IO[bytes]) -> None:
    pa, pq = _pyarrow()
    table = pa.Table.from_pylist([parquet_row(graph) for graph in graphs], schema=parquet_schema())
    pq.write_table(table, stream)


def _read_parquet_images(path: Path) -> list[str]:
    _, pq = _pyarrow()
    return pq.read_table(path, columns=["path"]).column("path").to_pylist()


SHARD_FORMATS = {
    "jsonl": ShardFormat("jsonl", ".jsonl", _write_jsonl, _read_jsonl_images),
    "parquet": ShardFormat("parquet", ".parquet", _write_parquet, _read_parquet_images),
}


def check_available(name: str) -> None:
    """MissingExtraError now, rather than at the first shard, when the format's package is missing."""
    if name == "parquet":
        _pyarrow()
