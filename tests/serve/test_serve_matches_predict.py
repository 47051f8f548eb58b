"""`egtr serve --backend onnxruntime|openvino` on an export answers the JSON `egtr predict` writes with that
backend on the same export: both take the image size stored in the export (made at --size 320
--max-size 480 here, not the 800 / 1333 default), read the image the same way and run one forward loop.
The server runs in its own process; its answer is compared with predict's file, field by field, exactly.
"""

from __future__ import annotations

import json

import pytest
import torch
from benchmarks.serve_load import ServerProcess, get_json, post_image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.models.egtr import EGTR

from .test_load import photo_like

ARCHITECTURE = {"num_queries": 10, "encoder_layers": 1, "decoder_layers": 2}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("serve_export")
    checkpoint = save_model(EGTR(EGTRConfig.small(**ARCHITECTURE)).eval(), folder / "model.safetensors")
    arguments = ["export", str(checkpoint), "--format", "onnx", "openvino", "--out", str(folder / "export")]
    assert main([*arguments, "--size", "320", "--max-size", "480"]) == 0
    return folder / "export"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_serve_answers_what_predict_writes(export, backend, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # predict names the graph by the file name, as the upload does
    image = photo_like(tmp_path / "street.jpg", seed=5).name
    arguments = ["--backend", backend, "--checkpoint", str(export)]
    assert main(["predict", image, *arguments, "--out", "predicted", "--no-progress"]) == 0
    expected = json.loads((tmp_path / "predicted" / "street.json").read_text())
    with ServerProcess([*arguments, "--log-level", "warning"]) as server:
        model = get_json(f"{server.url}/v1/model")
        answer = post_image(server.url, (tmp_path / image).read_bytes(), name=image)
    assert (model["backend"], model["preprocessing"]["size"], model["preprocessing"]["max_size"]) == (
        backend,
        320,
        480,
    )
    assert answer.status == 200, answer.body
    assert answer.body == expected
