"""A catalogue of hostile files: each is refused with a named error, runs no code, and makes the loader
open no file outside the inputs (checked with a Python audit hook on every `open`)."""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save as safetensors_save

from egtr.checkpoints import (
    MAX_CHECKPOINT_FILE_BYTES,
    ModelTooLargeError,
    load_backbone_file,
    load_model,
    save_model,
)
from egtr.config import CONFIG_FILE_LIMIT, EGTRConfig
from egtr.data import DatasetError, SceneGraphRecord, load_dataset, write_coco_dataset
from egtr.data.check import check_dataset
from egtr.data.images import ImageReadError, load_rgb
from egtr.evaluation.predictions_file import PredictionsFile, PredictionsFileError
from egtr.models.egtr import EGTR

from .official_checkpoints import write_official_artifact
from .torch_threads import one_torch_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MARKER = "code-ran"  # a hostile pickle would create this directory beside itself


# ----------------------------------------------------------------------------- the audit hook
_opened: list[str] | None = None


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)  # permanent once added; it records only while _opened is a list


def is_python_module(name: str) -> bool:
    """A module that a lazy import loads (not a file the input named)."""
    return name.endswith((".py", ".pyc", ".so")) and any(
        os.path.realpath(name).startswith(os.path.realpath(entry)) for entry in sys.path if entry
    )


def opened_while(call: Callable[[], object]) -> tuple[list[str], BaseException | None]:
    """The files opened while `call` runs (lazily imported Python modules left out), and its error."""
    global _opened
    _opened, error = [], None
    try:
        call()
    except Exception as raised:
        error = raised
    finally:
        opened, _opened = _opened, None
    return [name for name in opened if not is_python_module(name)], error


# ----------------------------------------------------------------------------- hostile files
class Evil:
    """Unpickling this creates a directory: the proof that code ran."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def small_config(**changes) -> EGTRConfig:
    return EGTRConfig.small(num_queries=8, **changes)


def native_with_config(folder: Path, config_text: str, tensors=None) -> Path:
    path = folder / "model.safetensors"
    tensors = tensors if tensors is not None else {"x": torch.zeros(1)}
    path.write_bytes(safetensors_save(tensors, metadata={"format": "egtr", "egtr_config": config_text}))
    return path


def config_text(**changes) -> str:
    """An EGTRConfig JSON with raw (unchecked) values."""
    return json.dumps({**small_config().to_dict(), **changes})


def good_native(folder: Path) -> Path:
    return save_model(EGTR(small_config()), folder / "model.safetensors")


def misshaped_native(folder: Path) -> Path:
    state = EGTR(small_config()).state_dict()
    state["detector.class_embed.weight"] = torch.zeros(500, 128)
    return native_with_config(folder, small_config().to_json(), state)


def extra_tensor_native(folder: Path) -> Path:
    state = {**EGTR(small_config()).state_dict(), "smuggled": torch.zeros(1000)}
    return native_with_config(folder, small_config().to_json(), state)


def header_claims_exabytes(folder: Path) -> Path:
    path = folder / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 60) + b'{"x": 1}')
    return path


def truncated_native(folder: Path) -> Path:
    path = good_native(folder)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def no_egtr_metadata(folder: Path) -> Path:
    path = folder / "model.safetensors"
    path.write_bytes(safetensors_save({"x": torch.zeros(1)}, metadata={"format": "pt"}))
    return path


def pickled_code_zip(folder: Path) -> Path:
    path = folder / "model.ckpt"
    torch.save({"state_dict": {}, "egtr_config": {}, "hook": Evil(folder / MARKER)}, path)
    return path


def pickled_code_legacy(folder: Path) -> Path:
    path = folder / "model.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": Evil(folder / MARKER)}, protocol=2))
    return path


def truncated_ckpt(folder: Path) -> Path:
    path = folder / "model.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(5000)}, "egtr_config": {}}, path)
    path.write_bytes(path.read_bytes()[:3000])
    return path


def list_ckpt(folder: Path) -> Path:
    path = folder / "model.ckpt"
    torch.save([1, 2, 3], path)
    return path


def trainer_ckpt(config: object) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "last.ckpt"
        torch.save({"state_dict": {}, "egtr_config": config}, path)
        return path

    return write


def official_artifact(changes: dict) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        torch.manual_seed(0)
        return write_official_artifact(folder, EGTR(small_config()), epochs=(1,), config_changes=changes)

    return write


def artifact_with_strings_as_weights(folder: Path) -> Path:
    artifact = official_artifact({})(folder)
    checkpoint = next((artifact / "checkpoints").glob("*.ckpt"))
    torch.save({"state_dict": {"model.rel_dist": "not a tensor"}}, checkpoint)
    return checkpoint


def artifact_with_huge_config(folder: Path) -> Path:
    artifact = official_artifact({})(folder)
    (artifact / "config.json").write_text(" " * (CONFIG_FILE_LIMIT + 1) + "{}")
    return artifact


def artifact_with_config_linked_to_dev_zero(folder: Path) -> Path:
    artifact = official_artifact({})(folder)
    (artifact / "config.json").unlink()
    (artifact / "config.json").symlink_to("/dev/zero")
    return next((artifact / "checkpoints").glob("*.ckpt"))


def sparse_oversized_ckpt(folder: Path) -> Path:
    path = folder / "huge.ckpt"
    with path.open("wb") as stream:
        stream.truncate(MAX_CHECKPOINT_FILE_BYTES + 1)  # sparse: no disk space used
    return path


def dataset_with_file_name(name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        root = folder / "data"
        (root / "images").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / "images" / "fine.png")
        records = [SceneGraphRecord("1", root / "images" / "fine.png", 8, 8, [[0, 0, 4, 4]], [0], [])]
        write_coco_dataset(root, {"train": records}, ["thing"], ["on"], copy_images=False)
        coco = json.loads((root / "train.json").read_text())
        coco["images"][0]["file_name"] = name
        (root / "train.json").write_text(json.dumps(coco))
        return root

    return write


def decompression_bomb(folder: Path) -> Path:
    path = folder / "bomb.png"
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width and height: 10^10 pixels
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def predictions_with_objects(folder: Path) -> Path:
    path = folder / "predictions.npz"
    np.savez(path, format=np.array("egtr-predictions"), image_ids=np.array([Evil(folder / MARKER)], object))
    return path


def backbone_with_code(folder: Path) -> Path:
    path = folder / "resnet.pth"
    torch.save({"conv1.weight": Evil(folder / MARKER)}, path)
    return path


def config_file(name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        return Path(name)

    return write


def dataset_load(root: Path) -> None:
    load_dataset(root, "train")


def dataset_check(root: Path) -> None:
    problems = check_dataset(root, splits=["train"]).problems
    assert [p.kind for p in problems] == ["unsafe_path"]
    raise DatasetError(problems[0])


def into_model(path: Path) -> None:
    load_backbone_file(EGTR(small_config()), path)


@dataclass
class Case:
    name: str
    write: Callable[[Path], Path]
    load: Callable[[Path], object]
    error: type[BaseException]
    message: str


CASES = [
    Case(
        "safetensors config is a path",
        lambda f: native_with_config(f, "/etc/passwd"),
        load_model,
        ValueError,
        "metadata egtr_config: not valid JSON",
    ),
    Case(
        "safetensors config is a device",
        lambda f: native_with_config(f, "/dev/zero"),
        load_model,
        ValueError,
        "metadata egtr_config: not valid JSON",
    ),
    Case(
        "safetensors config is not an object",
        lambda f: native_with_config(f, "[1, 2]"),
        load_model,
        ValueError,
        "expected a JSON object, got list",
    ),
    Case(
        "safetensors config with an unknown key",
        lambda f: native_with_config(f, config_text(evil=1)),
        load_model,
        ValueError,
        "unknown EGTRConfig key.*evil",
    ),
    Case(
        "safetensors config: 10^9 queries",
        lambda f: native_with_config(f, config_text(num_queries=10**9)),
        load_model,
        ValueError,
        r"num_queries must be an integer in 1\.\.10000",
    ),
    Case(
        "safetensors config: width 10^6",
        lambda f: native_with_config(f, config_text(d_model=10**6)),
        load_model,
        ValueError,
        r"d_model must be an integer in 1\.\.8192",
    ),
    Case(
        "safetensors config: layers as text",
        lambda f: native_with_config(f, config_text(decoder_layers="6")),
        load_model,
        ValueError,
        "decoder_layers must be an integer",
    ),
    Case(
        "safetensors config above the memory bound",
        lambda f: native_with_config(f, config_text(num_labels=2000, num_rel_labels=500)),
        load_model,
        ModelTooLargeError,
        r"needs at least 7\.5 GiB .* bound of 4 GiB",
    ),
    Case(
        "safetensors tensor of the wrong shape",
        misshaped_native,
        load_model,
        ValueError,
        r"mis-shaped.*detector\.class_embed\.weight \(500, 128\) vs \(12, 128\)",
    ),
    Case(
        "safetensors with a smuggled tensor",
        extra_tensor_native,
        load_model,
        ValueError,
        "unexpected: smuggled",
    ),
    Case(
        "safetensors header claiming 2^60 bytes",
        header_claims_exabytes,
        load_model,
        ValueError,
        "not a readable safetensors file",
    ),
    Case("truncated safetensors", truncated_native, load_model, ValueError, "safetensors file"),
    Case(
        "safetensors without egtr metadata",
        no_egtr_metadata,
        load_model,
        ValueError,
        "without an egtr config",
    ),
    Case("ckpt pickling code (zip)", pickled_code_zip, load_model, ValueError, "refused to load"),
    Case(
        "ckpt pickling code (legacy pickle)", pickled_code_legacy, load_model, ValueError, "refused to load"
    ),
    Case("truncated ckpt", truncated_ckpt, load_model, ValueError, "truncated"),
    Case("ckpt that is a list", list_ckpt, load_model, ValueError, "expected a checkpoint dictionary"),
    Case(
        "trainer ckpt whose config is a path",
        trainer_ckpt("/etc/passwd"),
        load_model,
        ValueError,
        "egtr_config is not a mapping",
    ),
    Case(
        "trainer ckpt: 10^5 decoder layers",
        trainer_ckpt({"decoder_layers": 10**5}),
        load_model,
        ValueError,
        "decoder_layers must be an integer in 1..64",
    ),
    Case(
        "official config: 10^6 queries",
        official_artifact({"num_queries": 10**6}),
        load_model,
        ValueError,
        "config.json: num_queries must be an integer",
    ),
    Case(
        "official config: 10^12 classes",
        official_artifact({"id2label": {str(10**12): "x"}}),
        load_model,
        ValueError,
        "config.json: id2label must map class indices",
    ),
    Case(
        "official config: 2 x 10^5 classes",
        official_artifact({"id2label": {"199999": "x"}}),
        load_model,
        ValueError,
        "config.json: num_labels must be an integer",
    ),
    Case(
        "official config above the memory bound",
        official_artifact({"num_queries": 9000, "num_rel_labels": 50}),
        load_model,
        ModelTooLargeError,
        "needs at least",
    ),
    Case(
        "official config larger than 1 MiB",
        artifact_with_huge_config,
        load_model,
        ValueError,
        "larger than 1048576 bytes",
    ),
    Case(
        "official config.json linked to /dev/zero",
        artifact_with_config_linked_to_dev_zero,
        load_model,
        ValueError,
        "needs its config.json",
    ),
    Case(
        "official ckpt with strings as weights",
        artifact_with_strings_as_weights,
        load_model,
        ValueError,
        "not a mapping of names to tensors",
    ),
    Case(
        "ckpt above 16 GiB (sparse)",
        sparse_oversized_ckpt,
        load_model,
        ValueError,
        "larger than any EGTR checkpoint .* refused unread",
    ),
    Case(
        "dataset file_name absolute",
        dataset_with_file_name("/etc/passwd"),
        dataset_load,
        DatasetError,
        r"images\[0\]\.file_name: absolute path '/etc/passwd' leaves the image folder \[unsafe_path\]",
    ),
    Case(
        "dataset file_name with ..",
        dataset_with_file_name("../../../../etc/hostname"),
        dataset_load,
        DatasetError,
        r"leaves the image folder through '\.\.' \[unsafe_path\]",
    ),
    Case(
        "dataset file_name with ..\\ (check)",
        dataset_with_file_name("..\\..\\secret.png"),
        dataset_check,
        DatasetError,
        "leaves the image folder through",
    ),
    Case(
        "image declaring 10^10 pixels",
        decompression_bomb,
        lambda p: load_rgb(p, p.name),
        ImageReadError,
        r"bomb.png: image too large \(Image size \(10000000000 pixels\)",
    ),
    Case(
        "predictions npz with pickled objects",
        predictions_with_objects,
        PredictionsFile,
        PredictionsFileError,
        "not a readable .npz predictions file",
    ),
    Case("backbone weights pickling code", backbone_with_code, into_model, ValueError, "refused to load"),
    Case(
        "config file /dev/zero",
        config_file("/dev/zero"),
        EGTRConfig.from_file,
        ValueError,
        "not a regular file",
    ),
]


def test_the_catalogue_is_large_and_every_name_unique():
    assert len(CASES) == 34 and len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_file_gets_a_named_error_and_no_side_effect(case, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    path = case.write(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    opened, error = opened_while(lambda: case.load(path))
    assert isinstance(error, case.error), f"{case.name}: {error!r}"
    assert re.search(case.message, str(error)), str(error)
    assert not (folder / MARKER).exists()  # no pickled code ran
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before  # nothing written
    inputs = str(folder.resolve())
    outside = [name for name in opened if not os.path.realpath(name).startswith(inputs)]
    assert outside == [], f"{case.name}: opened files outside the inputs: {outside}"


def test_the_audit_hook_sees_opens_and_the_oversized_file_is_never_opened(tmp_path):
    opened, error = opened_while(lambda: Path("/etc/hostname").read_bytes())
    assert error is None and "/etc/hostname" in opened
    huge = sparse_oversized_ckpt(tmp_path)
    opened, error = opened_while(lambda: load_model(huge))
    assert isinstance(error, ValueError) and opened == []
