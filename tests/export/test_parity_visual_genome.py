"""The Visual Genome preset (ResNet-50, 4 levels, 6+6 layers, 200 queries) exported to ONNX and OpenVINO
matches PyTorch: raw outputs within 1e-4 on a padded batch of two sizes, and the same top-100 triplets."""

import numpy as np
import pytest
from PIL import Image

from egtr import EGTRConfig
from egtr.export.exporter import export_model, load_backend
from egtr.inference.backend import TorchBackend
from egtr.inference.predictor import SceneGraphPredictor

from .conftest import model_with_statistics
from .parity import assert_raw_outputs_match, assert_same_graph
from .test_parity import padded_batch


@pytest.mark.slow
def test_visual_genome_preset_exports_match_pytorch(tmp_path):
    model = model_with_statistics(EGTRConfig.visual_genome())
    export_model(model, tmp_path, ["onnx", "openvino"])
    pixels, mask = padded_batch([(256, 384), (192, 320)])
    reference = TorchBackend(model, "cpu").run(pixels, mask)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8))
    options = {"size": 256, "max_size": 384}  # the photo becomes 256 x 341
    expected = SceneGraphPredictor(model, **options).predict(photo)
    assert len(expected.triplets) == 100
    for runtime in ("onnxruntime", "openvino"):
        backend = load_backend(runtime, tmp_path)
        assert_raw_outputs_match(reference, backend.run(pixels, mask))
        assert_same_graph(expected, SceneGraphPredictor(backend, **options).predict(photo))
