"""Images as ``datasets`` writes them: {"bytes", "path"} structs, single or in lists."""

import base64
import hashlib
import io
import json

import polars as pl
import pytest
from PIL import Image as PILImage

from vqaflow import images
from vqaflow.inputs.image_refs import image_refs, output_image_value, sniff_mime
from vqaflow.inputs.readers import iter_records
from vqaflow.inputs.shards import write_shards
from vqaflow.inputs.specs import InputError
from vqaflow.jsonl import read_jsonl
from workflow_helpers import COLUMNS, schema_defaults

MAX_PIXELS = schema_defaults()["images"]["max_pixels"]

datasets = pytest.importorskip("datasets")


def encoded(colour, fmt, size=(6, 4)):
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


RED_PNG = encoded((255, 0, 0), "PNG")
BLUE_JPEG = encoded((0, 0, 255), "JPEG", (5, 7))
GREEN_WEBP = encoded((0, 255, 0), "WEBP")


def decode_data_url(ref):
    header, payload = ref.split(",", 1)
    return header, base64.b64decode(payload)


def hf_parquet(path, column):
    from datasets import Dataset, Image, Sequence

    ds = Dataset.from_dict({"id": list(range(len(column))), "image": column})
    ds = ds.cast_column("image", Sequence(Image()) if isinstance(column[0], list) else Image())
    ds.to_parquet(str(path))
    return path


def test_hf_parquet_with_embedded_bytes(tmp_path):
    path = hf_parquet(tmp_path / "hf.parquet", [RED_PNG, BLUE_JPEG, GREEN_WEBP])
    assert pl.read_parquet(path).schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String})
    records = list(iter_records(path, COLUMNS))
    assert [rid for rid, _ in records] == ["0", "1", "2"]
    expected = [("image/png", RED_PNG, (255, 0, 0)), ("image/jpeg", BLUE_JPEG, (0, 0, 255)),
                ("image/webp", GREEN_WEBP, (0, 255, 0))]
    for (_, record), (mime, data, colour) in zip(records, expected):
        assert record["id"] == int(record["id"])  # integer ids keep their type
        [ref] = image_refs(record["image"])
        header, decoded = decode_data_url(ref)
        assert header == f"data:{mime};base64"
        assert decoded == data
        picture = images.load(ref, MAX_PIXELS)  # the images module takes it as it is
        assert picture.getpixel((1, 1)) == pytest.approx(colour, abs=8)
        stored = output_image_value(record["image"])
        assert stored == "sha256:" + hashlib.sha256(data).hexdigest()


def test_hf_parquet_through_shards(tmp_path):
    path = hf_parquet(tmp_path / "hf.parquet", [RED_PNG, BLUE_JPEG])
    shards = [tmp_path / "s0.jsonl"]
    assert len(write_shards(path, shards, 10, COLUMNS)) == 2
    lines = list(read_jsonl(shards[0]))
    assert [line["id"] for line in lines] == ["0", "1"]
    assert [line["record"]["id"] for line in lines] == [0, 1]
    for line, data in zip(lines, [RED_PNG, BLUE_JPEG]):
        [ref] = image_refs(line["record"]["image"])
        assert decode_data_url(ref)[1] == data
        assert "bytes" not in json.dumps(output_image_value(line["record"]["image"]))


def test_hf_parquet_list_of_images(tmp_path):
    path = hf_parquet(tmp_path / "hf.parquet", [[RED_PNG, BLUE_JPEG], [GREEN_WEBP]])
    records = [record for _, record in iter_records(path, COLUMNS)]
    refs = [image_refs(r["image"]) for r in records]
    assert [[decode_data_url(ref)[1] for ref in row] for row in refs] == [[RED_PNG, BLUE_JPEG], [GREEN_WEBP]]
    stored = [output_image_value(r["image"]) for r in records]
    assert stored == [["sha256:" + hashlib.sha256(d).hexdigest() for d in row]
                      for row in ([RED_PNG, BLUE_JPEG], [GREEN_WEBP])]


def test_hf_parquet_with_paths(tmp_path):
    """Images cast from file paths: datasets keeps the path and no bytes; embedding
    the bytes leaves a bare file name in ``path``."""
    from datasets import Dataset, Image
    from datasets.table import embed_table_storage

    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "red.png").write_bytes(RED_PNG)
    ds = Dataset.from_dict({"image": [str(tmp_path / "pics" / "red.png")]}).cast_column("image", Image())
    ds.to_parquet(str(tmp_path / "paths.parquet"))
    [(_, record)] = iter_records(tmp_path / "paths.parquet", COLUMNS)
    assert record["image"] == {"bytes": None, "path": str(tmp_path / "pics" / "red.png")}
    assert image_refs(record["image"]) == (str(tmp_path / "pics" / "red.png"),)
    assert output_image_value(record["image"]) == str(tmp_path / "pics" / "red.png")

    ds.with_format("arrow").map(embed_table_storage, batched=True).to_parquet(str(tmp_path / "embedded.parquet"))
    [(_, record)] = iter_records(tmp_path / "embedded.parquet", COLUMNS)
    assert record["image"]["path"] == "red.png"
    [ref] = image_refs(record["image"])
    assert decode_data_url(ref) == ("data:image/png;base64", RED_PNG)  # the bytes win over a bare name
    assert output_image_value(record["image"]) == "red.png"


def test_json_records_with_image_structs(tmp_path):
    b64 = base64.b64encode(RED_PNG).decode()
    rows = [
        {"id": "plain", "image": "cat.jpg"},
        {"id": "b64", "image": {"bytes": b64, "path": None}},
        {"id": "url", "image": {"bytes": "data:image/png;base64," + b64}},
        {"id": "path", "image": {"bytes": None, "path": "imgs/dog.png"}},
        {"id": "mixed", "image": ["a.png", {"bytes": b64, "path": "red.png"}]},
        {"id": "none", "image": {"bytes": None, "path": None}},
        {"id": "empty", "image": ""},
        {"id": "null", "image": None},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = dict(iter_records(path, COLUMNS))
    url = "data:image/png;base64," + b64
    assert {rid: image_refs(r["image"]) for rid, r in records.items()} == {
        "plain": ("cat.jpg",), "b64": (url,), "url": (url,), "path": ("imgs/dog.png",),
        "mixed": ("a.png", url), "none": (), "empty": (), "null": (),
    }
    digest = "sha256:" + hashlib.sha256(RED_PNG).hexdigest()
    assert {rid: output_image_value(r["image"]) for rid, r in records.items()} == {
        "plain": "cat.jpg", "b64": digest, "url": digest, "path": "imgs/dog.png",
        "mixed": ["a.png", "red.png"], "none": None, "empty": "", "null": None,
    }


def test_image_refs_of_raw_values():
    assert image_refs(None) == image_refs("") == image_refs([]) == ()
    assert image_refs("https://x/y.png") == ("https://x/y.png",)
    assert image_refs(["a.png", "b.png"]) == ("a.png", "b.png")
    assert image_refs(RED_PNG) == ("data:image/png;base64," + base64.b64encode(RED_PNG).decode(),)
    assert image_refs({"bytes": BLUE_JPEG, "path": "x.jpg"})[0].startswith("data:image/jpeg;base64,")
    assert output_image_value({"bytes": BLUE_JPEG, "path": None}) == "sha256:" + hashlib.sha256(BLUE_JPEG).hexdigest()
    assert output_image_value("data:image/png;base64," + base64.b64encode(RED_PNG).decode()) == (
        "sha256:" + hashlib.sha256(RED_PNG).hexdigest())


@pytest.mark.parametrize("data, mime", [
    (RED_PNG, "image/png"), (BLUE_JPEG, "image/jpeg"), (GREEN_WEBP, "image/webp"),
    (encoded((1, 2, 3), "GIF"), "image/gif"), (encoded((1, 2, 3), "BMP"), "image/bmp"),
    (encoded((1, 2, 3), "TIFF"), "image/tiff"), (b"hello", "application/octet-stream"),
])
def test_sniff_mime(data, mime):
    assert sniff_mime(data) == mime


@pytest.mark.parametrize("image, message", [
    ({"bytes": None, "path": "a.png", "size": 3}, "got an object with keys ['bytes', 'path', 'size']"),
    ({"bytes": 5}, "an image's 'bytes' must be bytes or a base64 string, got int"),
    ({"bytes": "not base64!"}, "an image's 'bytes' string is not base64"),
    ({"path": 3}, "an image's 'path' must be a string, got int"),
    (["a.png", None], "'image' must be a path, a {\"bytes\", \"path\"} image or a list of them, got NoneType"),
    (["a.png", {"bytes": None, "path": None}], "an image in the list has neither bytes nor path"),
    ([["a.png"]], "got list"),
    (7.5, "got float"),
])
def test_garbage_images_are_refused_with_the_line(tmp_path, image, message):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "image": "ok.png"}\n' + json.dumps({"id": 2, "image": image}) + "\n")
    with pytest.raises(InputError) as err:
        list(iter_records(path, COLUMNS))
    assert "in.jsonl:2: " in str(err.value)
    assert message in str(err.value)


def test_binary_column_that_is_not_an_image_stays_json(tmp_path):
    path = tmp_path / "in.parquet"
    pl.DataFrame({"id": ["a"], "blob": [b"\x00\x01"], "image": ["x.png"]}).write_parquet(path)
    [(_, record)] = iter_records(path, COLUMNS)
    assert record["blob"] == "data:application/octet-stream;base64,AAE="


def test_output_digest_matches_the_images_module(tmp_path):
    url = image_refs({"bytes": RED_PNG, "path": None})[0]
    assert output_image_value({"bytes": RED_PNG, "path": None}) == images.digest(url)
    assert output_image_value("data:image/png;base64,@@not base64").startswith("sha256:")
