"""Exported models (ONNX Runtime, OpenVINO) against PyTorch: raw outputs within 1e-4, the same scene graphs.

Edge inputs: a 1x1 input and a 1x1 image, a very wide image (feature maps one row high), batches of mixed
sizes (padded), an image with no confident object, and the logit-adjustment switch.
"""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from egtr.export.openvino_backend import supported_precisions
from egtr.inference.backend import TorchBackend
from egtr.inference.predictor import SceneGraphPredictor

from .parity import assert_raw_outputs_match, assert_same_graph

RUNTIMES = ("onnxruntime", "openvino")
FAST = {"size": 32, "max_size": 64}


def padded_batch(sizes, seed=0):
    """Random normalized images of the given (height, width), zero-padded into one batch with a mask."""
    generator = torch.Generator().manual_seed(seed)
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    pixels = torch.zeros(len(sizes), 3, height, width)
    mask = torch.zeros(len(sizes), height, width, dtype=torch.bool)
    for index, (h, w) in enumerate(sizes):
        pixels[index, :, :h, :w] = torch.randn(3, h, w, generator=generator)
        mask[index, :h, :w] = True
    return pixels, mask


EDGE_BATCHES = {
    "1x1 input": [(1, 1)],
    "very wide": [(2, 64)],  # a 400x10 image at size 32 / max 64: every feature map is one row high
    "very tall": [(64, 3)],
    "mixed sizes": [(40, 56), (32, 48), (24, 56)],
    "batch of 4 (traced with 2)": [(48, 40)] * 4,
}


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", list(EDGE_BATCHES))
def test_raw_outputs_equal_pytorch_on_edge_inputs(small_export, small_backends, runtime, case):
    pixels, mask = padded_batch(EDGE_BATCHES[case])
    reference = TorchBackend(small_export.model, "cpu").run(pixels, mask)
    assert_raw_outputs_match(reference, small_backends[runtime].run(pixels, mask))


def write_image(path, width, height, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def edge_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge_images")
    return [
        write_image(folder / "one_pixel.png", 1, 1),
        write_image(folder / "very_wide.png", 400, 10, seed=1),
        write_image(folder / "landscape.png", 64, 48, seed=2),
        write_image(folder / "portrait.png", 48, 64, seed=3),
        write_image(folder / "landscape2.png", 64, 48, seed=4),
    ]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("pad_mixed_sizes", [False, True])
def test_scene_graphs_equal_pytorch(small_export, small_backends, edge_images, runtime, pad_mixed_sizes):
    """Top-100 triplets (ties as sets) and objects, through the whole predictor, batched by 3."""
    options = {**FAST, "batch_size": 3, "pad_mixed_sizes": pad_mixed_sizes}
    expected = SceneGraphPredictor(small_export.model, **options).predict(edge_images)
    graphs = SceneGraphPredictor(small_backends[runtime], **options).predict(edge_images)
    assert [len(g.triplets) for g in graphs] == [100] * len(edge_images)  # 12 queries: 132 pairs
    for reference, graph in zip(expected, graphs):
        assert_same_graph(reference, graph)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_logit_adjustment_is_applied_in_python_to_exports_too(small_export, runtime, edge_images):
    """The switch lives in the backend's config (as for a PyTorch model's), never in the graph."""
    model = copy.deepcopy(small_export.model)
    model.config.logit_adjustment, model.config.logit_adj_tau = True, 0.5
    backend = small_export.backend(runtime)
    backend.config.logit_adjustment, backend.config.logit_adj_tau = True, 0.5
    expected = SceneGraphPredictor(model, **FAST).predict(edge_images[2])
    plain = SceneGraphPredictor(small_export.model, **FAST).predict(edge_images[2])
    graph = SceneGraphPredictor(backend, **FAST).predict(edge_images[2])
    assert_same_graph(expected, graph)
    assert [t.score for t in expected.triplets] != pytest.approx([t.score for t in plain.triplets])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_image_with_no_confident_object(tiny_export, edge_images, runtime):
    """The tiny model's sigmoid object scores are ~1e-13; it has no connectivity head and unfilled frequency
    tables."""
    options = {**FAST, "object_score": "sigmoid", "top_k": 20}
    backend = tiny_export.backend(runtime)
    pixels, mask = padded_batch([(32, 40), (24, 32)])
    raw = backend.run(pixels, mask)
    assert raw.connectivity_logits is None and not backend.rel_dist.any()
    assert_raw_outputs_match(TorchBackend(tiny_export.model, "cpu").run(pixels, mask), raw)
    expected = SceneGraphPredictor(tiny_export.model, **options).predict(edge_images[2])
    graph = SceneGraphPredictor(backend, **options).predict(edge_images[2])
    assert max(graph.scores) < 1e-6
    assert_same_graph(expected, graph)
    nothing = SceneGraphPredictor(backend, **options, threshold=1e-3).predict(edge_images[2])
    assert nothing.triplets == [] and nothing.to_dict()["objects"] == []


def test_precisions_other_than_fp32_are_refused_or_native(small_export):
    with pytest.raises(ValueError, match="runs fp32 only"):
        small_export.backend("onnxruntime", precision="bf16")
    for precision in ("bf16", "fp16"):
        if precision in supported_precisions():
            assert small_export.backend("openvino", precision=precision).precision == precision
        else:
            with pytest.raises(ValueError, match=f"no native {precision}"):
                small_export.backend("openvino", precision=precision)


def test_exports_run_on_the_cpu_only_and_do_not_explain(small_export, small_backends):
    with pytest.raises(ValueError, match="CPU only"):
        small_export.backend("onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="explanations need"):
        SceneGraphPredictor(small_backends["onnxruntime"], explain_rank=1)


def test_openvino_compiles_per_shape_then_once_for_all_shapes(small_export):
    from egtr.export.openvino_backend import OpenVinoBackend

    backend = OpenVinoBackend(small_export.folder, threads=1, static_shapes=2)
    shapes = []
    for batch in ([(32, 40)], [(32, 40)], [(40, 40)] * 2, [(16, 64)], [(32, 40)]):
        pixels, mask = padded_batch(batch, seed=len(shapes))
        reference = TorchBackend(small_export.model, "cpu").run(pixels, mask)
        assert_raw_outputs_match(reference, backend.run(pixels, mask))
        shapes.append(backend.shape)
    assert backend.static_compilations == 2
    assert shapes == [(1, 32, 40), (1, 32, 40), (2, 40, 40), None, None]  # None: compiled for any shape
