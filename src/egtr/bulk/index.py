"""Shards and their index: how the sharded layouts (--jsonl, --parquet) commit results and read them back.

    DIR/shards/r00001-000003.parquet   a shard: up to --shard-size images, the 3rd written by process 1
    DIR/index/r00001-000003.json       its entry: {"shard": "r00001-000003.parquet", "images": [keys]}
    DIR/index.json                     the merged index, {"format", "version", "layout", "shards": [entry]}

Committing a shard is two writes, each atomic and durable (temporary file, fsync, rename, fsync of the
folder, egtr.files):
  1. its index entry, naming the images the shard holds;
  2. the shard itself, whose rename is the commit point.
An image is committed when a shard holds it. A kill or a power cut between any two writes leaves temporary
files (never read, removed at the next start), an entry whose shard does not exist (not committed: removed
at the next start, its images are predicted again), or a whole shard with its whole entry. So no committed
image is lost, nothing is half-written, and no image is held twice: a run puts in new shards only images that
no committed shard holds, and shards are never rewritten. `shards/*` holds exactly the committed images,
each once, at any moment: readers may glob it while a run goes on.

At the end of a run the first process merges every committed entry into index.json, written before the
per-shard entries it takes in are removed (a kill in between leaves both, which say the same). A shard found
without an entry (only if someone removed index files) gets its entry back from the shard itself.
Names r{rank:05d}-{seq:06d}: each process numbers its shards after every name already in the folder, so no
process of this run or of a later one picks a taken name. Entries and shard names are checked against that
pattern; no value in them names another file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from egtr.bulk.shard_formats import ShardFormat
from egtr.files import sync_folder, write_atomically, write_text

SHARDS, ENTRIES, INDEX_FILE = "shards", "index", "index.json"
INDEX_FORMAT = "egtr predict index"
NAME = re.compile(r"r(\d{5})-(\d{6})")


def shard_stem(rank: int, sequence: int) -> str:
    return f"r{rank:05d}-{sequence:06d}"


class ShardIndex:
    """The shards of `out` in `shard_format` and their index (see the module docstring)."""

    def __init__(self, out: Path, shard_format: ShardFormat) -> None:
        self.out, self.format = Path(out), shard_format
        self.shards, self.entries, self.merged = self.out / SHARDS, self.out / ENTRIES, self.out / INDEX_FILE

    # ---------------------------------------------------------------------------------------------- reading
    def committed(self) -> dict[str, list[str]]:
        """shard stem -> the images it holds, for every committed shard.

        Raises ValueError naming the file for an index that is not one, or for an image held twice."""
        shards = self._shard_stems()
        entries = {**self._merged_entries(), **self._entry_files()}
        committed = {stem: images for stem, images in entries.items() if stem in shards}
        for stem in sorted(shards - committed.keys()):  # an entry removed by hand: the shard says
            committed[stem] = self.format.read_images(self.shards / f"{stem}{self.format.suffix}")
        holder: dict[str, str] = {}
        for stem, images in committed.items():
            for image in images:
                if holder.setdefault(image, stem) != stem:
                    raise ValueError(
                        f"{self.shards}: {image} is in shards {holder[image]} and {stem} (the folder was "
                        "changed outside egtr predict); --overwrite starts afresh"
                    )
        return committed

    def _shard_stems(self) -> set[str]:
        if not self.shards.is_dir():
            return set()
        return {
            path.stem
            for path in self.shards.iterdir()
            if path.suffix == self.format.suffix and NAME.fullmatch(path.stem) and path.is_file()
        }

    def _entry_files(self) -> dict[str, list[str]]:
        if not self.entries.is_dir():
            return {}
        found = {}
        for path in sorted(self.entries.iterdir()):
            if path.suffix == ".json" and NAME.fullmatch(path.stem):
                found[path.stem] = self._images(_read_json(path), path, path.stem)
        return found

    def _merged_entries(self) -> dict[str, list[str]]:
        if not self.merged.is_file():
            return {}
        data = _read_json(self.merged)
        if (
            not isinstance(data, dict)
            or data.get("format") != INDEX_FORMAT
            or not isinstance(data.get("shards"), list)
        ):
            raise ValueError(f"{self.merged}: not an egtr predict index; --overwrite starts afresh")
        found = {}
        for position, entry in enumerate(data["shards"]):
            shard = entry.get("shard") if isinstance(entry, dict) else None
            stem = str(shard)[: -len(self.format.suffix)] if str(shard).endswith(self.format.suffix) else ""
            if not NAME.fullmatch(stem):
                raise ValueError(f"{self.merged}: shards[{position}].shard is not a shard name: {shard!r}")
            found[stem] = self._images(entry, self.merged, stem, f"shards[{position}].")
        return found

    def _images(self, entry: object, path: Path, stem: str, where: str = "") -> list[str]:
        if not isinstance(entry, dict) or entry.get("shard") != f"{stem}{self.format.suffix}":
            raise ValueError(f"{path}: {where}shard must be {stem}{self.format.suffix}")
        images = entry.get("images")
        if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
            raise ValueError(f"{path}: {where}images must be a list of paths")
        return images

    def next_sequence(self, rank: int) -> int:
        """The number of process `rank`'s next shard: after every name of that process in the folder."""
        names = self._shard_stems() | set(self._merged_entries())
        if self.entries.is_dir():
            names.update(path.stem for path in self.entries.iterdir())
        taken = [int(match[2]) for match in map(NAME.fullmatch, names) if match and int(match[1]) == rank]
        return max(taken, default=0) + 1

    # ---------------------------------------------------------------------------------------------- writing
    def clean(self) -> None:
        """Remove what a killed run left: temporary files and entries whose shard does not exist. Only the
        first process calls it, before any process of the run reads the index."""
        shards = self._shard_stems()
        removed = False
        for folder in (self.shards, self.entries, self.out):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                leftover = path.name.startswith(".") and path.name.endswith(".tmp")
                stale = folder == self.entries and NAME.fullmatch(path.stem) and path.stem not in shards
                if (leftover or stale) and path.is_file():
                    path.unlink()
                    removed = True
        if removed:
            sync_folder(self.entries if self.entries.is_dir() else self.out)

    def commit(self, stem: str, graphs: list[dict]) -> None:
        """Commit one shard of `graphs` (SceneGraph.to_dict, each with its `image`): entry, then shard."""
        name = f"{stem}{self.format.suffix}"
        entry = {"shard": name, "images": [graph["image"] for graph in graphs]}
        write_text(self.entries / f"{stem}.json", json.dumps(entry) + "\n", durable=True)
        write_atomically(self.shards / name, lambda stream: self.format.write(graphs, stream), durable=True)

    def merge(self) -> int:
        """Write index.json with every committed shard, then remove the entries it took in; returns the
        number of shards."""
        committed = self.committed()
        shards = [
            {"shard": f"{stem}{self.format.suffix}", "images": committed[stem]} for stem in sorted(committed)
        ]
        index = {"format": INDEX_FORMAT, "version": 1, "layout": self.format.name, "shards": shards}
        write_text(self.merged, json.dumps(index) + "\n", durable=True)
        if self.entries.is_dir():
            for path in self.entries.iterdir():
                if path.suffix == ".json" and NAME.fullmatch(path.stem) and path.stem in committed:
                    path.unlink()
            sync_folder(self.entries)
        return len(shards)


def _read_json(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as stream:
            return json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({error}); --overwrite starts afresh") from error
