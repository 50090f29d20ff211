import base64
import io

import pytest
from PIL import Image

from vqaflow import images


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def decode(url):
    header, payload = url.split(",", 1)
    return header, Image.open(io.BytesIO(base64.b64decode(payload)))


def noisy(size):
    """A photo-like image: gradients with sensor-like noise (many distinct colours)."""
    gradient = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    return Image.merge("RGB", [Image.effect_noise(size, 30), gradient, radial])


def test_camera_photo_is_downscaled_under_limits(tmp_path):
    path = save(noisy((4000, 3000)), tmp_path / "photo.jpg", quality=95)
    url = images.data_url(path)
    header, image = decode(url)
    assert header == "data:image/jpeg;base64"
    assert image.width * image.height <= images.DEFAULT_MAX_PIXELS
    assert abs(image.width / image.height - 4 / 3) < 0.01
    assert len(base64.b64decode(url.split(",", 1)[1])) < 1.5e6


def test_never_upscales(tmp_path):
    path = save(noisy((64, 48)), tmp_path / "small.jpg")
    assert images.load(path).size == (64, 48)


def test_exif_orientation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(noisy((200, 100)), tmp_path / "rot.jpg", exif=exif)
    assert images.load(path).size == (100, 200)


@pytest.mark.parametrize("mode", ["P", "CMYK", "I;16", "LA", "L"])
def test_modes_become_rgb(tmp_path, mode):
    source = Image.new("RGB", (40, 30), (10, 200, 30)).convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        source = Image.new("I;16", (40, 30), 40000)
    ext = "tiff" if mode in ("CMYK", "I;16") else "png"
    path = save(source, tmp_path / f"img.{ext}")
    assert images.load(path).mode == "RGB"


def test_transparency_kept_as_png(tmp_path):
    image = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    header, decoded = decode(images.data_url(save(image, tmp_path / "a.png")))
    assert header == "data:image/png;base64" and decoded.mode == "RGBA"


def test_line_art_as_png(tmp_path):
    header, _ = decode(images.data_url(save(Image.new("RGB", (300, 200), "white"), tmp_path / "a.bmp")))
    assert header == "data:image/png;base64"


def test_small_upright_jpeg_goes_out_unchanged(tmp_path):
    path = save(noisy((400, 300)), tmp_path / "small.jpg", quality=80)
    header, payload = images.data_url(path).split(",", 1)
    assert header == "data:image/jpeg;base64"
    assert base64.b64decode(payload) == (tmp_path / "small.jpg").read_bytes()


def test_rotated_or_oversized_jpeg_is_prepared(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = save(noisy((200, 100)), tmp_path / "rot.jpg", exif=exif)
    assert decode(images.data_url(rotated))[1].size == (100, 200)
    large = save(noisy((400, 300)), tmp_path / "large.jpg")
    assert decode(images.data_url(large, max_pixels=10_000))[1].size == (115, 86)


def test_urls_pass_through_and_data_urls_decode(tmp_path):
    assert images.data_url("https://example.org/a.jpg") == "https://example.org/a.jpg"
    buffer = io.BytesIO()
    noisy((50, 40)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert images.load(url).size == (50, 40)


@pytest.mark.parametrize(
    "content, message",
    [(None, "image file not found"), (b"not an image", "not an image format"),
     (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "(corrupt image|not an image format)")],
)
def test_bad_images_raise_image_error(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(images.ImageError, match=message):
        images.load(str(path))


def test_resolve_relative_to_root(tmp_path):
    assert images.resolve("./x/a.png", tmp_path) == str(tmp_path / "x" / "a.png")
    assert images.resolve("http://h/a.png", tmp_path) == "http://h/a.png"


def test_digest_follows_content(tmp_path):
    a = save(noisy((20, 20)), tmp_path / "a.png")
    b = save(Image.new("RGB", (20, 20)), tmp_path / "b.png")
    assert images.digest(a) != images.digest(b)
    assert images.digest(a) == images.digest(a)
