"""One image reader: the dataset (training, `egtr evaluate`) and the predictor (`egtr predict`, serving)
turn the same file into the same tensor, with the official defaults and with every option."""

import pytest
import torch

from egtr.data import SceneGraphRecord
from egtr.data.dataset import SceneGraphDataset
from egtr.data.images import ImageReading
from egtr.data.transforms import eval_transform
from egtr.inference.predictor import SceneGraphPredictor

from .conftest import FAST, small_model

READINGS = [
    {},  # the official loader
    {"exif": True},
    {"conversion": "composite"},
    {"exif": True, "conversion": "composite"},
]


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.mark.parametrize(
    "name", ["exif.jpg", "rgba.png", "palette_transparent.png", "depth16.png", "float.tif"]
)
@pytest.mark.parametrize(
    "options", READINGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "official"
)
def test_dataset_and_predictor_give_the_same_tensor(model, mode_images, name, options):
    path = mode_images[name]
    record = SceneGraphRecord("x", path, 1, 1, [], [], [])
    dataset = SceneGraphDataset(
        [record], eval_transform(FAST["size"], FAST["max_size"]), reading=ImageReading(**options)
    )
    from_dataset = dataset[0]["pixel_values"]
    predictor = SceneGraphPredictor(model, **FAST, **options)
    from_predictor = predictor._prepare(0, path).pixel_values
    assert torch.equal(from_dataset, from_predictor)


def test_the_options_change_the_pixels_where_they_should(mode_images):
    def tensor(name, **options):
        record = SceneGraphRecord("x", mode_images[name], 1, 1, [], [], [])
        return SceneGraphDataset([record], reading=ImageReading(**options))[0]["pixel_values"]

    assert tensor("exif.png").shape[1:] == (40, 64) and tensor("exif.png", exif=True).shape[1:] == (64, 40)
    assert not torch.equal(tensor("rgba.png"), tensor("rgba.png", conversion="composite"))
    assert not torch.equal(tensor("depth16.png"), tensor("depth16.png", conversion="composite"))
    with pytest.raises(ValueError, match="conversion must be one of"):
        ImageReading(conversion="magic")
