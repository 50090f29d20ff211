import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from vqaflow import images
from workflow_helpers import png_header_only, schema_defaults

MAX_PIXELS = schema_defaults()["images"]["max_pixels"]

SCRIPTS = Path(images.__file__).resolve().parent.parent


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
    url = images.data_url(path, MAX_PIXELS)
    header, image = decode(url)
    assert header == "data:image/jpeg;base64"
    assert image.width * image.height <= MAX_PIXELS
    assert abs(image.width / image.height - 4 / 3) < 0.01
    assert len(base64.b64decode(url.split(",", 1)[1])) < 1.5e6


def test_never_upscales(tmp_path):
    path = save(noisy((64, 48)), tmp_path / "small.jpg")
    assert images.load(path, MAX_PIXELS).size == (64, 48)


def test_exif_orientation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(noisy((200, 100)), tmp_path / "rot.jpg", exif=exif)
    assert images.load(path, MAX_PIXELS).size == (100, 200)


@pytest.mark.parametrize("mode", ["P", "CMYK", "I;16", "LA", "L"])
def test_modes_become_rgb(tmp_path, mode):
    source = Image.new("RGB", (40, 30), (10, 200, 30)).convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        source = Image.new("I;16", (40, 30), 40000)
    ext = "tiff" if mode in ("CMYK", "I;16") else "png"
    path = save(source, tmp_path / f"img.{ext}")
    assert images.load(path, MAX_PIXELS).mode == "RGB"


def test_transparency_kept_as_png(tmp_path):
    image = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    header, decoded = decode(images.data_url(save(image, tmp_path / "a.png"), MAX_PIXELS))
    assert header == "data:image/png;base64" and decoded.mode == "RGBA"


def test_line_art_as_png(tmp_path):
    header, _ = decode(images.data_url(save(Image.new("RGB", (300, 200), "white"), tmp_path / "a.bmp"), MAX_PIXELS))
    assert header == "data:image/png;base64"


def test_small_upright_jpeg_goes_out_unchanged(tmp_path):
    path = save(noisy((400, 300)), tmp_path / "small.jpg", quality=80)
    header, payload = images.data_url(path, MAX_PIXELS).split(",", 1)
    assert header == "data:image/jpeg;base64"
    assert base64.b64decode(payload) == (tmp_path / "small.jpg").read_bytes()


def test_rotated_or_oversized_jpeg_is_prepared(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = save(noisy((200, 100)), tmp_path / "rot.jpg", exif=exif)
    assert decode(images.data_url(rotated, MAX_PIXELS))[1].size == (100, 200)
    large = save(noisy((400, 300)), tmp_path / "large.jpg")
    assert decode(images.data_url(large, max_pixels=10_000))[1].size == (115, 86)


def test_urls_pass_through_and_data_urls_decode(tmp_path):
    assert images.data_url("https://example.org/a.jpg", MAX_PIXELS) == "https://example.org/a.jpg"
    buffer = io.BytesIO()
    noisy((50, 40)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert images.load(url, MAX_PIXELS).size == (50, 40)


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
        images.load(str(path), MAX_PIXELS)


def test_resolve_relative_to_root(tmp_path):
    assert images.resolve("./x/a.png", tmp_path) == str(tmp_path / "x" / "a.png")
    assert images.resolve("http://h/a.png", tmp_path) == "http://h/a.png"


def test_digest_follows_content(tmp_path):
    a = save(noisy((20, 20)), tmp_path / "a.png")
    b = save(Image.new("RGB", (20, 20)), tmp_path / "b.png")
    assert images.digest(a) != images.digest(b)
    assert images.digest(a) == images.digest(a)


@pytest.mark.parametrize("width, height", [(20000, 20000), (13000, 12000)])
def test_too_many_pixels_refused_before_decoding(tmp_path, width, height):
    # 400 MP is above Pillow's own bomb limit (it raises), 156 MP only above ours
    path = png_header_only(tmp_path / "bomb.png", width, height)
    pixels = f"{width * height:,} pixels"
    limit = f"limit of {images.MAX_IMAGE_PIXELS:,} pixels"
    for prepare in (images.load, images.data_url):
        with pytest.raises(images.ImageError) as failure:
            prepare(path, MAX_PIXELS)
        assert pixels in str(failure.value) and limit in str(failure.value) and path in str(failure.value)


def test_path_with_nul_byte_is_an_image_error():
    with pytest.raises(images.ImageError, match="not a usable path"):
        images.data_url("bad\0name.jpg", MAX_PIXELS)


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory):
    """A 100-megapixel photo-like JPEG (12000 x 8400)."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    noisy((1200, 840)).resize((12000, 8400), Image.Resampling.NEAREST).save(path, quality=85)
    return str(path)


PEAK_MEMORY = """
import json, resource, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from vqaflow import images
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with ThreadPoolExecutor(4) as pool:  # as a shard job prepares images: 4 threads
    urls = list(pool.map(images.data_url, [sys.argv[2]] * 8, [1 << 20] * 8))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grown_mb": (after - before) / 1024, "peak_mb": after / 1024, "length": len(urls[0])}))
"""


def test_huge_jpegs_are_decoded_at_reduced_size(huge_jpeg):
    url = images.data_url(huge_jpeg, MAX_PIXELS)
    header, image = decode(url)
    assert header == "data:image/jpeg;base64"
    assert image.width * image.height <= MAX_PIXELS
    assert abs(image.width / image.height - 12000 / 8400) < 0.01
    loaded = images.load(huge_jpeg, max_pixels=250_000)
    assert loaded.width * loaded.height <= 250_000


def test_huge_jpegs_keep_memory_small(huge_jpeg):
    # decoded at full size, each of the 4 images in flight would take 400 MB and more
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(SCRIPTS), huge_jpeg],
                            capture_output=True, text=True, check=True)
    memory = json.loads(result.stdout)
    assert memory["grown_mb"] < 300, memory


def test_decode_budget_lets_an_oversized_image_run_alone():
    budget = images._Budget(100)
    with budget.hold(60):
        assert budget.used == 60
    with budget.hold(10_000):  # more than the budget: takes all of it, so runs alone
        assert budget.used == 100
    assert budget.used == 0
