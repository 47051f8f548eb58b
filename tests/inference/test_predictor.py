"""SceneGraphPredictor end to end: equal to the model + official post-processing done by hand."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from egtr import SceneGraphPredictor
from egtr.boxes import cxcywh_to_xyxy
from egtr.checkpoints import load_model, save_model
from egtr.data.images import ImageReadError, load_rgb
from egtr.data.transforms import eval_transform
from egtr.devices import resolve_device
from egtr.inference.backend import TorchBackend
from egtr.inference.names import packaged_visual_genome_names

from .conftest import FAST, random_pixels, small_model, write_rgb
from .official_reference import official_candidates
from .test_scene_graph import check_schema


def outputs_by_hand(checkpoint, image_path, size=FAST["size"], max_size=FAST["max_size"]):
    """The model's raw outputs for one image: upright RGB -> eval transform -> forward, no batching code."""
    model = load_model(checkpoint)
    image = load_rgb(image_path, str(image_path))
    pixel_values, _ = eval_transform(size, max_size)(image, {"boxes": torch.zeros((0, 4))})
    with torch.inference_mode():
        outputs = model(pixel_values[None], torch.ones(pixel_values.shape[1:], dtype=torch.bool)[None])
    return outputs, image


def query_triplets(graph):
    return [
        (int(graph.queries[t.subject]), int(graph.queries[t.object]), t.predicate) for t in graph.triplets
    ]


@pytest.mark.parametrize("graph_constraint", [True, False])
def test_top_100_triplets_equal_the_official_post_processing(checkpoint, mode_images, graph_constraint):
    predictor = SceneGraphPredictor.from_checkpoint(checkpoint, graph_constraint=graph_constraint, **FAST)
    graph = predictor.predict(mode_images["rgb.jpg"])
    outputs, image = outputs_by_hand(checkpoint, mode_images["rgb.jpg"])
    expected = official_candidates(outputs, graph_constraint)[:100]
    assert len(graph.triplets) == 100  # 12 queries: 132 ordered pairs
    assert query_triplets(graph) == [c[:3] for c in expected]
    np.testing.assert_allclose([t.score for t in graph.triplets], [c[3] for c in expected], rtol=1e-5)
    # objects: boxes scaled to the original pixels, softmax scores and labels of their queries
    probabilities = outputs.logits[0].softmax(-1)
    boxes = cxcywh_to_xyxy(outputs.pred_boxes[0]) * torch.tensor([image.width, image.height] * 2)
    np.testing.assert_allclose(graph.boxes, boxes[graph.queries].numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(graph.scores, probabilities.max(-1).values[graph.queries].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(graph.labels, probabilities.argmax(-1)[graph.queries].numpy())
    assert (graph.width, graph.height) == image.size
    check_schema(json.loads(graph.to_json()))


def test_every_input_kind_gives_the_same_graph(checkpoint, mode_images):
    predictor = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=5, **FAST)
    path = mode_images["gray.png"]
    with Image.open(path) as opened:
        pil = opened.copy()
    graphs = predictor.predict([str(path), path, pil, np.asarray(pil)])
    assert [g.source for g in graphs] == [str(path), str(path), "<image 2>", "<array 3>"]
    reference = graphs[0].to_dict()
    for graph in graphs[1:]:
        assert {**graph.to_dict(), "image": reference["image"]} == reference


@pytest.mark.parametrize("name", ["exif.jpg", "rgba.png", "palette.png", "depth16.png", "float.tif"])
def test_every_file_mode_predicts_in_the_pixels_of_the_one_reader(checkpoint, mode_images, name):
    predictor = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=3, **FAST)
    graph = predictor.predict(mode_images[name])
    read = load_rgb(mode_images[name], name)
    assert (graph.width, graph.height) == read.size
    assert len(graph.triplets) == 3
    check_schema(graph.to_dict())


def test_batches_of_equal_sizes_give_the_unbatched_results(checkpoint, tmp_path):
    paths = [write_rgb(tmp_path / f"{i}.png", 64, 48, seed=i) for i in range(3)]
    alone = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=10, **FAST).predict(paths)
    batched = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=10, batch_size=3, workers=2, **FAST)
    for single, together in zip(alone, batched.predict(paths)):
        assert query_triplets(single) == query_triplets(together)
        np.testing.assert_allclose(single.boxes, together.boxes, rtol=1e-4, atol=1e-3)


def test_bad_inputs_raise_in_predict_and_are_reported_in_order_by_iter_predict(checkpoint, tmp_path):
    good = write_rgb(tmp_path / "good.png", 40, 40)
    empty = tmp_path / "empty.jpg"
    empty.touch()
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    big = write_rgb(tmp_path / "big.png", 96, 96)
    predictor = SceneGraphPredictor.from_checkpoint(
        checkpoint, top_k=2, batch_size=2, max_pixels=5000, **FAST
    )
    with pytest.raises(ImageReadError, match=r"empty.jpg: empty file"):
        predictor.predict([good, empty])
    results = list(predictor.iter_predict([empty, good, corrupt, big, good]))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.graph is not None for r in results] == [False, True, False, False, True]
    assert "empty file" in results[0].error
    assert "not an image file" in results[2].error
    assert "too large: 96 x 96 = 9216 pixels" in results[3].error
    assert results[1].image.size == (40, 40)


def test_explanations_are_attached_when_asked(checkpoint, mode_images):
    predictor = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=4, explain_rank=2, **FAST)
    graph = predictor.predict(mode_images["rgb.jpg"])
    explanation = graph.explanation
    assert explanation["rank"] == 2 and explanation["predicate"] == graph.predicate_names[1]
    assert explanation["subject_query"] == graph.queries[graph.triplets[1].subject]
    assert len(explanation["attention"]["subject_to_object"]) == 3  # small config: 3 decoder layers
    assert explanation["gates"]["sources"] == ["layer 1", "layer 2", "layer 3", "final hidden"]
    assert "explain" in json.loads(graph.to_json())
    beyond = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=4, explain_rank=5, **FAST)
    assert beyond.predict(mode_images["rgb.jpg"]).explanation is None


def test_visual_genome_names_for_a_150_50_model(tmp_path, mode_images):
    path = save_model(small_model(num_labels=150, num_rel_labels=50), tmp_path / "vg.safetensors")
    graph = SceneGraphPredictor.from_checkpoint(path, top_k=5, **FAST).predict(mode_images["rgb.jpg"])
    names = packaged_visual_genome_names()
    assert graph.label_names == [names["objects"][label] for label in graph.labels]
    assert graph.predicate_names == [names["predicates"][t.predicate] for t in graph.triplets]


def test_names_option_and_options_checks(checkpoint, mode_images):
    names = {"objects": [f"o{i}" for i in range(12)], "predicates": [f"r{i}" for i in range(6)]}
    graph = SceneGraphPredictor.from_checkpoint(checkpoint, names=names, top_k=2, **FAST).predict(
        mode_images["rgb.jpg"]
    )
    assert all(name.startswith("o") for name in graph.label_names)
    assert all(name.startswith("r") for name in graph.predicate_names)
    model = small_model()
    with pytest.raises(ValueError, match="max_size"):
        SceneGraphPredictor(model, size=100, max_size=50)
    with pytest.raises(ValueError, match="1-based"):
        SceneGraphPredictor(model, explain_rank=0)


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("gpu")


def test_default_preprocessing_is_the_official_evaluation_size():
    predictor = SceneGraphPredictor(small_model())
    pixel_values, _ = predictor.transform(
        Image.fromarray(random_pixels(300, 500)), {"boxes": torch.zeros((0, 4))}
    )
    assert tuple(pixel_values.shape) == (3, 800, 1333)  # shorter side 800, longer capped at 1333


def prepared(predictor, paths):
    return [predictor.preprocess(load_rgb(path, str(path)), str(path), i) for i, path in enumerate(paths)]


def test_predict_prepared_gives_each_image_its_own_selection(checkpoint, tmp_path):
    paths = [write_rgb(tmp_path / f"{i}.png", 64, 48, seed=i) for i in range(3)]
    predictor = SceneGraphPredictor.from_checkpoint(checkpoint, **FAST)
    selections = [
        predictor.selection(top_k=3),
        predictor.selection(graph_constraint=False, object_score="sigmoid"),
        predictor.selection(threshold=0.01, object_threshold=0.0),
    ]
    options = [
        {"top_k": 3},
        {"graph_constraint": False, "object_score": "sigmoid"},
        {"threshold": 0.01, "object_threshold": 0.0},
    ]
    batch = prepared(predictor, paths)
    graphs = predictor.predict_prepared(batch, selections)
    for position, option in enumerate(options):  # the same batch through a predictor made with the option
        expected = SceneGraphPredictor.from_checkpoint(checkpoint, **FAST, **option).predict_prepared(batch)
        assert graphs[position].to_dict() == expected[position].to_dict()
    assert len(graphs[0].triplets) == 3 and len(graphs[2].labels) == 12


def test_selection_refuses_bad_options_by_name(checkpoint):
    predictor = SceneGraphPredictor.from_checkpoint(checkpoint, **FAST)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        predictor.selection(top_k=0)
    with pytest.raises(ValueError, match="object_score must be one of"):
        predictor.selection(object_score="argmax")
    with pytest.raises(TypeError, match="colour"):
        predictor.selection(colour="red")
    assert predictor.selection() == predictor.default_selection


class RecordingBackend(TorchBackend):
    """The PyTorch backend, remembering the (batch, height, width) of every batch it runs."""

    def __init__(self, model):
        super().__init__(model, "cpu")
        self.batches = []

    def run(self, pixel_values, pixel_mask):
        self.batches.append(tuple(pixel_mask.shape))
        return super().run(pixel_values, pixel_mask)


def test_only_equal_sizes_share_a_batch_and_results_keep_input_order(checkpoint, tmp_path):
    """Resized by FAST, 64x48 (w x h) images become 32x42 (h x w), 48x64 ones 42x32; one file is missing."""
    shapes = [(64, 48), (48, 64), (64, 48), None, (64, 48), (48, 64), (64, 48)]
    paths = []
    for index, shape in enumerate(shapes):
        if shape is None:
            paths.append(tmp_path / "missing.png")
        else:
            paths.append(write_rgb(tmp_path / f"{index}.png", *shape, seed=index))
    backend = RecordingBackend(load_model(checkpoint))
    predictor = SceneGraphPredictor(backend, top_k=10, batch_size=3, **FAST)
    results = list(predictor.iter_predict(paths))
    assert [r.index for r in results] == list(range(7)) and results[3].error is not None
    assert backend.batches == [(3, 32, 42), (2, 42, 32), (1, 32, 42)]  # the full batch, then the rest
    alone = SceneGraphPredictor.from_checkpoint(checkpoint, top_k=10, **FAST)
    for path, result in zip(paths, results):
        if result.error is None:
            expected = alone.predict(path)
            assert query_triplets(result.graph) == query_triplets(expected)
            np.testing.assert_allclose(result.graph.boxes, expected.boxes, rtol=1e-4, atol=1e-4)


def test_a_batch_runs_part_full_when_its_first_image_waited_long_enough(checkpoint, tmp_path):
    odd = write_rgb(tmp_path / "odd.png", 48, 64)
    paths = [odd] + [write_rgb(tmp_path / f"{i}.png", 64, 48, seed=i) for i in range(9)]
    backend = RecordingBackend(load_model(checkpoint))
    results = list(SceneGraphPredictor(backend, top_k=2, batch_size=2, **FAST).iter_predict(paths))
    assert [r.index for r in results] == list(range(10))
    # the odd image waits for at most 4 * batch_size = 8 later inputs, then runs alone
    assert backend.batches == [(2, 32, 42)] * 4 + [(1, 42, 32), (1, 32, 42)]


def test_pad_mixed_sizes_pads_different_sizes_together(checkpoint, tmp_path):
    paths = [write_rgb(tmp_path / "a.png", 64, 48), write_rgb(tmp_path / "b.png", 48, 64)]
    backend = RecordingBackend(load_model(checkpoint))
    SceneGraphPredictor(backend, batch_size=2, pad_mixed_sizes=True, **FAST).predict(paths)
    assert backend.batches == [(2, 42, 42)]


def test_backends_bring_their_own_device_and_precision(checkpoint):
    backend = TorchBackend(load_model(checkpoint), "cpu")
    with pytest.raises(ValueError, match="brings its own device and precision"):
        SceneGraphPredictor(backend, device="cpu")
    with pytest.raises(TypeError, match="must be an egtr.EGTR or a Backend"):
        SceneGraphPredictor("model.safetensors")
    predictor = SceneGraphPredictor(backend)
    assert predictor.config is backend.config and predictor.device == backend.device
