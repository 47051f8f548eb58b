"""Image inputs -> 8-bit RGB: the official conversion by default, the composite conversion and EXIF on
request, arrays, and a clear error per bad input."""

import numpy as np
import pytest
from PIL import Image

from egtr.data.images import ImageReadError, ImageReading, load_rgb, source_name, to_uint8

from .conftest import random_pixels, write_rgb, write_with_orientation


def pixels(image):
    return np.asarray(image)


@pytest.mark.parametrize(
    "name",
    ["rgb.jpg", "gray.png", "rgba.png", "palette.png", "palette_transparent.png", "depth16.png", "float.tif"],
)
def test_every_mode_becomes_8_bit_rgb_of_the_same_size(mode_images, name):
    path = mode_images[name]
    with Image.open(path) as original:
        size = original.size
    for conversion in ("official", "composite"):
        image = load_rgb(path, name, conversion=conversion)
        assert image.mode == "RGB" and image.size == size
        assert pixels(image).dtype == np.uint8


@pytest.mark.parametrize(
    "name",
    [
        "rgb.jpg",
        "exif.jpg",
        "exif.png",
        "gray.png",
        "rgba.png",
        "palette.png",
        "palette_transparent.png",
        "depth16.png",
        "float.tif",
    ],
)
def test_default_reads_exactly_as_the_official_loader(mode_images, name):
    """The official loader: Image.open(path).convert("RGB") (EXIF ignored, alpha dropped, PIL clipping)."""
    with Image.open(mode_images[name]) as original:
        expected = pixels(original.convert("RGB"))
    np.testing.assert_array_equal(pixels(load_rgb(mode_images[name], name)), expected)
    np.testing.assert_array_equal(pixels(ImageReading().read(mode_images[name], name)), expected)


def test_sixteen_bit_is_scaled_not_clipped(mode_images):
    with Image.open(mode_images["depth16.png"]) as original:
        assert original.mode.startswith("I;16")
        expected = (np.asarray(original).astype(np.int64) // 257).astype(np.uint8)  # written as 257 * k
    image = pixels(load_rgb(mode_images["depth16.png"], "depth16", conversion="composite"))
    np.testing.assert_array_equal(image[..., 0], expected)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_float_image_in_unit_range_is_multiplied_by_255(mode_images):
    with Image.open(mode_images["float.tif"]) as original:
        assert original.mode == "F"
        expected = np.rint(np.asarray(original, dtype=np.float64) * 255).astype(np.uint8)
    image = load_rgb(mode_images["float.tif"], "f", conversion="composite")
    np.testing.assert_array_equal(pixels(image)[..., 1], expected)


def test_grayscale_is_copied_to_three_channels(mode_images):
    with Image.open(mode_images["gray.png"]) as original:
        gray = np.asarray(original)
    image = pixels(load_rgb(mode_images["gray.png"], "gray"))
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (200, 10, 20, 255)  # opaque
    rgba[0, 1] = (200, 10, 20, 0)  # fully transparent
    rgba[0, 2] = (0, 0, 0, 128)  # half transparent black
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    composite = {"conversion": "composite"}
    for image in (
        load_rgb(path, "file", **composite),
        load_rgb(rgba, "array"),
        load_rgb(Image.open(path), "pil", **composite),
    ):
        values = pixels(image)
        assert tuple(values[0, 0]) == (200, 10, 20)
        assert tuple(values[0, 1]) == (255, 255, 255)
        assert 125 <= values[0, 2, 0] <= 128


def test_palette_transparency_becomes_white(mode_images):
    with Image.open(mode_images["palette_transparent.png"]) as original:
        transparent = np.asarray(original) == 0
    image = pixels(load_rgb(mode_images["palette_transparent.png"], "p", conversion="composite"))
    assert transparent.any()
    assert (image[transparent] == 255).all()


@pytest.mark.parametrize(("name", "rotation"), [("exif.jpg", Image.Transpose.ROTATE_270), ("exif.png", None)])
def test_exif_orientation_is_applied_on_request(mode_images, name, rotation):
    image = load_rgb(mode_images[name], name, exif=True)
    assert image.size == (40, 64)  # written 64 x 40, tagged as rotated by 90 degrees
    if rotation is None:  # lossless: compare the pixels with the rotation done by hand (orientation 8)
        with Image.open(mode_images[name]) as original:
            expected = original.convert("RGB").transpose(Image.Transpose.ROTATE_90)
        np.testing.assert_array_equal(pixels(image), pixels(expected))


def test_exif_is_ignored_by_default_as_the_official_loader_does(mode_images):
    stored = load_rgb(mode_images["exif.png"], "x")
    assert stored.size == (64, 40)
    with Image.open(mode_images["exif.png"]) as original:
        np.testing.assert_array_equal(pixels(stored), pixels(original.convert("RGB")))


def test_pil_input_with_orientation_is_turned_upright(tmp_path):
    path = write_with_orientation(tmp_path / "o.png", 6)
    with Image.open(path) as opened:
        assert load_rgb(opened, "pil", exif=True).size == (40, 64)


def test_arrays_of_every_supported_kind():
    gray = random_pixels(10, 12, channels=1)
    expected = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(pixels(load_rgb(gray, "a")), expected)
    np.testing.assert_array_equal(pixels(load_rgb(gray[..., None], "a")), expected)
    np.testing.assert_array_equal(pixels(load_rgb(gray.astype(np.uint16) * 257, "a")), expected)
    np.testing.assert_array_equal(pixels(load_rgb(gray / 255.0, "a")), expected)
    rgb = random_pixels(10, 12)
    np.testing.assert_array_equal(pixels(load_rgb(rgb, "a")), rgb)
    assert pixels(load_rgb(np.ones((3, 3), bool), "a")).max() == 255


def test_uint8_scaling_rules():
    np.testing.assert_array_equal(to_uint8(np.array([0, 128, 255], np.int32)), [0, 128, 255])
    np.testing.assert_array_equal(to_uint8(np.array([0, 65535], np.int32)), [0, 255])
    np.testing.assert_array_equal(to_uint8(np.array([-10.0, 0.0, 10.0])), [0, 128, 255])  # stretched
    np.testing.assert_array_equal(to_uint8(np.array([np.nan, 1.0])), [0, 255])
    np.testing.assert_array_equal(to_uint8(np.full(3, 7.5)), [0, 0, 0])  # constant out of range


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "not an image"),
        (np.zeros((0, 4), np.uint8), "not an image"),
        (np.zeros((2, 2, 2, 3), np.uint8), "not an image"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_bad_arrays_are_named(array, message):
    with pytest.raises(ImageReadError, match=rf"^<array 3>: .*{message}"):
        load_rgb(array, source_name(array, 3))


def test_bad_files_each_get_a_clear_reason(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.touch()
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = write_rgb(tmp_path / "cut.jpg", 96, 96)
    truncated.write_bytes(truncated.read_bytes()[:300])
    cases = {
        empty: "empty file",
        text: "not an image file",
        truncated: "corrupt or truncated",
        tmp_path / "missing.jpg": "no such file",
        tmp_path: "not a file",
    }
    for path, reason in cases.items():
        with pytest.raises(ImageReadError, match=reason) as raised:
            load_rgb(path, str(path))
        assert raised.value.source == str(path)


def test_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    path = write_rgb(tmp_path / "big.png", 64, 48)
    with pytest.raises(ImageReadError, match="too large: 64 x 48 = 3072 pixels, above the limit of 3000"):
        load_rgb(path, "big", max_pixels=3000)
    with pytest.raises(ImageReadError, match="too large"):
        load_rgb(Image.open(path), "big", max_pixels=3000)
    assert load_rgb(path, "big", max_pixels=3072).size == (64, 48)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL's own bomb guard (raises above 2x)
    with pytest.raises(ImageReadError, match="too large"):
        load_rgb(path, "big")
    with pytest.raises(ImageReadError, match="too large"):
        load_rgb(path, "big", max_pixels=10**9)  # PIL's error, reported the same way


def test_unsupported_input_types_are_named():
    with pytest.raises(ImageReadError, match="unsupported input type list"):
        load_rgb([1, 2], "x")
    assert source_name("a/b.jpg", 0) == "a/b.jpg"
    assert source_name(Image.new("RGB", (2, 2)), 4) == "<image 4>"


def encoded(image: Image.Image, format: str, **options) -> bytes:
    import io

    stream = io.BytesIO()
    image.save(stream, format=format, **options)
    return stream.getvalue()


@pytest.mark.parametrize(
    "name", ["rgb.jpg", "exif.jpg", "rgba.png", "palette_transparent.png", "depth16.png"]
)
def test_bytes_of_a_file_read_like_the_file(mode_images, name):
    path = mode_images[name]
    from_bytes = load_rgb(path.read_bytes(), "upload")
    np.testing.assert_array_equal(pixels(from_bytes), pixels(load_rgb(path, name)))
    assert source_name(path.read_bytes(), 3) == "<bytes 3>"


def test_bytes_limited_to_formats_refuse_others_by_kind(mode_images):
    tiff = mode_images["float.tif"].read_bytes()
    assert load_rgb(tiff, "t", formats=("TIFF",)).size == (40, 40)
    with pytest.raises(ImageReadError, match=r"^t: not an image in a supported format \(PNG\)") as caught:
        load_rgb(tiff, "t", formats=("PNG",))
    assert caught.value.kind == "format"
    ico = encoded(Image.new("RGB", (16, 16)), "ICO")  # PIL reads ICO, a server need not
    with pytest.raises(ImageReadError, match="supported format") as caught:
        load_rgb(ico, "icon", formats=("JPEG", "PNG"))
    assert caught.value.kind == "format" and load_rgb(ico, "icon").size == (16, 16)


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (b"", "empty", "empty image data"),
        (b"plain text, no image", "format", "not an image file"),
        (None, "corrupt", "corrupt or truncated"),  # a PNG cut in half
        (None, "too_large", "image too large: 64 x 48 = 3072 pixels"),
    ],
)
def test_bad_bytes_name_the_problem_and_its_kind(mode_images, data, kind, message):
    png = encoded(Image.fromarray(random_pixels(48, 64)), "PNG")
    data = png[: len(png) // 2] if kind == "corrupt" else png if data is None else data
    with pytest.raises(ImageReadError, match=f"^upload: {message}") as caught:
        load_rgb(data, "upload", max_pixels=1000 if kind == "too_large" else None)
    assert caught.value.kind == kind


def test_every_error_has_a_kind(tmp_path):
    kinds = {}
    for name, image in (
        ("missing", tmp_path / "nope.png"),
        ("input", {"not": "an image"}),
        ("array", np.zeros((2, 2, 7))),
    ):
        with pytest.raises(ImageReadError) as caught:
            load_rgb(image, name)
        kinds[name] = caught.value.kind
    assert kinds == {"missing": "missing", "input": "input", "array": "input"}
    with pytest.raises(ValueError, match="kind must be one of"):
        ImageReadError("x", "y", "unknown")
