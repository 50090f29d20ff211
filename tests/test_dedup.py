"""Duplicate images on real files: re-encoded and resized copies, byte copies, bad images."""

import base64
import json
import random
import shutil
from pathlib import Path

import imagehash
import pytest
from PIL import Image

from vqaflow.digests import content_digest
from vqaflow.quality import image_dedup, image_keys
from workflow_helpers import schema_defaults

MAX_DISTANCE = schema_defaults()["dedup"]["max_distance"]

DEMO = Path(__file__).resolve().parent.parent / "demo" / "images"


def degraded_copy(source: Path, target: Path) -> str:
    """A 50 % resized copy re-encoded as JPEG at quality 60."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.resize((image.width // 2, image.height // 2), Image.LANCZOS).save(target, "JPEG", quality=60)
    return str(target)


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_resized_reencoded_copy_is_a_perceptual_duplicate(tmp_path):
    copy = degraded_copy(DEMO / "lighthouse.png", tmp_path / "lighthouse_small.jpg")
    items = [("light", ["lighthouse.png"]), ("fruit", ["fruit_bowl.png"]), ("copy", [copy])]
    found = image_dedup.find_duplicates(items, "perceptual", max_distance=4, root=str(DEMO))
    assert len(found) == 1
    assert found[0]["id"] == "copy" and found[0]["duplicate_of"] == "light"
    distance = image_dedup.key_distance(image_dedup.image_key(copy), image_dedup.image_key(DEMO / "lighthouse.png"))
    assert found[0]["distance"] == distance and 0 <= distance <= 4


def test_different_demo_images_are_not_duplicates(tmp_path):
    names = sorted(path.name for path in DEMO.iterdir())
    keys = [image_dedup.image_key(str(DEMO / name)) for name in names]
    distances = [image_dedup.key_distance(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]
    assert all(distance is None or distance > 4 for distance in distances)
    assert image_dedup.find_duplicates([(name, [name]) for name in names], "perceptual", MAX_DISTANCE, root=str(DEMO)) == []
    copy = degraded_copy(DEMO / "fruit_bowl.png", tmp_path / "fruit.jpg")
    found = image_dedup.find_duplicates([("light", ["lighthouse.png"]), ("fruit", [copy])], "perceptual", MAX_DISTANCE,
                                        root=str(DEMO))
    assert found == []


def test_exact_mode_finds_byte_identical_copies_only(tmp_path):
    shutil.copy(DEMO / "sunset.jpg", tmp_path / "same.jpg")
    reencoded = degraded_copy(DEMO / "sunset.jpg", tmp_path / "smaller.jpg")
    items = [
        ("a", [str(DEMO / "sunset.jpg")]),
        ("b", [reencoded]),
        ("c", [str(tmp_path / "same.jpg")]),
        ("d", [data_url(DEMO / "sunset.jpg")]),
    ]
    assert image_dedup.find_duplicates(items, "exact", MAX_DISTANCE) == [
        {"id": "c", "duplicate_of": "a", "distance": 0},
        {"id": "d", "duplicate_of": "a", "distance": 0},
    ]


def test_data_urls_and_the_process_pool_give_the_same_answer(tmp_path):
    copy = degraded_copy(DEMO / "street_sign.png", tmp_path / "sign.jpg")
    items = [("sign", [data_url(DEMO / "street_sign.png")]), ("bar", ["bar_chart.png"]), ("copy", [copy])]
    serial = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(DEMO))
    pooled = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(DEMO), workers=2, batch_size=2)
    assert serial == pooled and [d["id"] for d in serial] == ["copy"]


def test_first_record_is_kept_and_duplicates_point_at_it(tmp_path):
    copies = [degraded_copy(DEMO / "lighthouse.png", tmp_path / f"c{i}.jpg") for i in range(2)]
    items = [("first", ["lighthouse.png"]), ("second", [copies[0]]), ("third", [copies[1]])]
    found = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(DEMO))
    assert [(d["id"], d["duplicate_of"]) for d in found] == [("second", "first"), ("third", "first")]


def test_multi_image_records_match_image_by_image(tmp_path):
    light = degraded_copy(DEMO / "lighthouse.png", tmp_path / "l.jpg")
    fruit = degraded_copy(DEMO / "fruit_bowl.png", tmp_path / "f.jpg")
    items = [
        ("pair", ["lighthouse.png", "fruit_bowl.png"]),
        ("single", ["lighthouse.png"]),  # a different number of images: not a duplicate
        ("swapped", ["fruit_bowl.png", "lighthouse.png"]),  # order matters
        ("half", [light, "bar_chart.png"]),  # one image matches, the other does not
        ("copy", [light, fruit]),
    ]
    found = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(DEMO))
    assert [(d["id"], d["duplicate_of"]) for d in found] == [("copy", "pair")]
    assert found[0]["distance"] == max(
        image_dedup.key_distance(image_dedup.image_key(light), image_dedup.image_key("lighthouse.png", root=DEMO)),
        image_dedup.key_distance(image_dedup.image_key(fruit), image_dedup.image_key("fruit_bowl.png", root=DEMO)),
    )


def test_unreadable_images_are_reported_not_raised(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "text.jpg").write_text("hello")
    items = [
        ("ok", ["lighthouse.png"]),
        ("missing", ["nowhere.png"]),
        ("broken", [str(tmp_path / "broken.png")]),
        ("text", [str(tmp_path / "text.jpg")]),
        ("url", ["https://example.org/a.png"]),
        ("bad64", ["data:image/png;base64,@@@"]),
        ("none", []),
        ("ok2", ["lighthouse.png"]),
    ]
    unreadable, stats = [], {}
    found = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(DEMO), unreadable=unreadable, stats=stats)
    assert found == [{"id": "ok2", "duplicate_of": "ok", "distance": 0}]
    assert [u["id"] for u in unreadable] == ["missing", "broken", "text", "url", "bad64"]
    assert all(u["error"] for u in unreadable)
    assert stats["unreadable_images"] == 5 and stats["kept"] == 1 and stats["duplicates"] == 1


def test_exact_mode_reports_missing_files(tmp_path):
    unreadable = []
    assert image_dedup.find_duplicates([("a", ["gone.png"]), ("b", ["gone.png"])], "exact", MAX_DISTANCE,
                                 root=str(tmp_path), unreadable=unreadable) == []
    assert [u["id"] for u in unreadable] == ["a", "b"]


def test_bad_arguments_raise():
    with pytest.raises(image_dedup.DedupError):
        image_dedup.find_duplicates([], "fuzzy", MAX_DISTANCE)
    with pytest.raises(image_dedup.DedupError):
        image_dedup.find_duplicates([], "perceptual", max_distance=64)


@pytest.mark.parametrize("max_distance", [0, 1, 4, 8, 12])
@pytest.mark.parametrize("expected", [100, 1_000_000])
def test_hash_index_agrees_with_brute_force(max_distance, expected):
    rng = random.Random(max_distance)
    base = [rng.getrandbits(64) for _ in range(200)]
    keys = base + [key ^ sum(1 << bit for bit in rng.sample(range(64), rng.randint(0, 14))) for key in base]
    index = image_dedup.HashIndex(max_distance, expected=expected)
    for key in keys:
        brute = sorted((entry, image_dedup.hamming(key, other)) for entry, other in enumerate(index.keys)
                       if image_dedup.hamming(key, other) <= max_distance)
        assert index.search(key) == brute
        index.add(key)


def test_plan_bands_prefers_wide_bands_for_large_inputs():
    assert image_dedup.plan_bands(4, 1_000) == 5  # one exact lookup per band
    assert image_dedup.plan_bands(4, 1_000_000) == 3  # 21-bit bands, one flipped bit
    assert image_dedup.plan_bands(0, 10) == 1


def test_image_key_of_bytes_path_and_data_url_agree():
    path = DEMO / "fruit_bowl.png"
    for mode in ("exact", "perceptual"):
        keys = {image_dedup.image_key(path.read_bytes(), mode), image_dedup.image_key(path, mode),
                image_dedup.image_key("fruit_bowl.png", mode, root=DEMO), image_dedup.image_key(data_url(path), mode)}
        assert len(keys) == 1
    phash, colours = image_dedup.image_key(path, "perceptual")
    assert isinstance(phash, int) and len(bytes.fromhex(colours)) == 4 * 4 * 3
    assert image_dedup.image_key(path, "exact") == content_digest(path.read_bytes())


def gradient(size: tuple[int, int], start: tuple[int, int, int], end: tuple[int, int, int],
             vertical: bool = False) -> Image.Image:
    """A linear gradient from ``start`` to ``end`` colour, left to right (or top to bottom)."""
    width, height = size
    steps = height if vertical else width
    line = Image.new("RGB", (1, steps) if vertical else (steps, 1))
    line.putdata([tuple(round(a + (b - a) * i / (steps - 1)) for a, b in zip(start, end)) for i in range(steps)])
    return line.resize(size, Image.NEAREST)


def low_texture_images(folder: Path) -> list[str]:
    """Distinct images that all look flat to a 64-bit pHash: plain colours, gradients, and
    colour variants of one picture."""
    made = {
        "grey.png": Image.new("RGB", (256, 256), (128, 128, 128)),
        "grey_lighter.png": Image.new("RGB", (256, 256), (134, 134, 134)),
        "green.png": Image.new("RGB", (256, 256), (0, 160, 0)),
        "red.png": Image.new("RGB", (256, 256), (200, 0, 0)),
        "white.jpg": Image.new("RGB", (320, 200), (255, 255, 255)),
        "grey_ramp.png": gradient((256, 256), (0, 0, 0), (255, 255, 255)),
        "grey_ramp_narrow.png": gradient((256, 256), (60, 60, 60), (200, 200, 200)),
        "grey_ramp_down.png": gradient((256, 256), (0, 0, 0), (255, 255, 255), vertical=True),
        "red_blue.png": gradient((256, 256), (255, 0, 0), (0, 0, 255)),
        "blue_red.png": gradient((256, 256), (0, 0, 255), (255, 0, 0)),
    }
    with Image.open(DEMO / "lighthouse.png") as source:
        red, green, blue = source.convert("RGB").split()
        made["lighthouse_bgr.png"] = Image.merge("RGB", (blue, green, red))
        made["lighthouse_brighter.png"] = source.convert("RGB").point(lambda v: min(255, v + 40))
    for name, image in made.items():
        image.save(folder / name)
    return list(made)


def test_low_texture_images_and_colour_variants_are_never_merged(tmp_path):
    names = low_texture_images(tmp_path)
    for name in DEMO.iterdir():
        shutil.copy(name, tmp_path / name.name)
    shutil.copy(tmp_path / "grey.png", tmp_path / "grey_copy.png")  # the one byte copy
    names = [*names, *sorted(path.name for path in DEMO.iterdir()), "grey_copy.png"]
    items = [(name, [name]) for name in names]
    for workers in (1, 2):
        found = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(tmp_path), workers=workers)
        assert found == [{"id": "grey_copy.png", "duplicate_of": "grey.png", "distance": 0}]
    # what the pHash alone (the old key) made of them: 8 of the 10 synthetic images lost
    hashes = [imagehash.phash(Image.open(tmp_path / name)) for name in names[:10]]
    lost = [n for n, key in enumerate(hashes) if any(key - earlier <= MAX_DISTANCE for earlier in hashes[:n])]
    assert len(lost) == 8


def test_flat_images_are_keyed_by_their_bytes_textured_ones_by_hash_and_colour(tmp_path):
    low_texture_images(tmp_path)
    for name in ("grey.png", "grey_ramp.png", "red_blue.png"):
        with Image.open(tmp_path / name) as image:
            assert image_keys.perceptual_features(image)[1] < image_keys.MIN_TEXTURE
        assert image_dedup.image_key(tmp_path / name) == content_digest((tmp_path / name).read_bytes())
    with Image.open(DEMO / "street_sign.png") as image:
        assert image_keys.perceptual_features(image)[1] >= image_keys.MIN_TEXTURE
    light = image_dedup.image_key(DEMO / "lighthouse.png")
    copy = image_dedup.image_key(degraded_copy(DEMO / "lighthouse.png", tmp_path / "small.jpg"))
    brighter = image_dedup.image_key(tmp_path / "lighthouse_brighter.png")
    assert image_dedup.key_distance(light, copy) <= MAX_DISTANCE
    assert image_dedup.hamming(light[0], brighter[0]) <= 16 and image_dedup.key_distance(light, brighter) is None
    # keys read back from JSON (lists) compare the same
    assert image_dedup.key_distance(list(light), list(copy)) == image_dedup.key_distance(light, copy)
    assert image_dedup.key_distance(light, image_dedup.image_key(tmp_path / "grey.png")) is None


def test_hash_index_finds_digests_only_by_themselves():
    index = image_dedup.HashIndex(4, expected=100)
    index.add("sha256:aa")
    index.add((0b1011, "00" * 48))
    index.add(0b1001)
    assert index.search("sha256:aa") == [(0, 0)]
    assert index.search("sha256:bb") == []
    assert index.search((0b1011, "ff" * 48)) == [(1, 0), (2, 1)]  # by pHash; colours are the matcher's


def test_shards_hashed_apart_and_matched_together_give_the_same_duplicates(tmp_path):
    """The workflow hashes each shard in a job of its own and matches all the hash lines in
    input order: the same answer as one pass, for duplicates within and across shards."""
    copy = degraded_copy(DEMO / "lighthouse.png", tmp_path / "lighthouse_small.jpg")
    items = [("light", ["lighthouse.png"]), ("fruit", ["fruit_bowl.png"]), ("copy", [copy]),
             ("bad", ["missing.png"]), ("none", []), ("copy2", ["lighthouse.png"]), ("pair", ["a.png", copy])]
    shards = [items[:2], items[2:5], items[5:]]
    lines = []
    for shard in shards:  # written as JSON lines and read back, as the jobs do
        hashed = image_dedup.hash_records(shard, "perceptual", DEMO)
        lines.extend(json.loads(json.dumps(line)) for line in hashed)
    unreadable = []
    matcher = image_dedup.DuplicateMatcher("perceptual", MAX_DISTANCE, expected=len(lines), unreadable=unreadable)
    for line in lines:
        matcher.add(line)
    one_pass_unreadable = []
    one_pass = image_dedup.find_duplicates(items, "perceptual", MAX_DISTANCE, root=str(DEMO),
                                           unreadable=one_pass_unreadable)
    assert matcher.duplicates == one_pass
    assert [d["id"] for d in one_pass] == ["copy", "copy2"] and {d["duplicate_of"] for d in one_pass} == {"light"}
    assert [u["id"] for u in unreadable] == [u["id"] for u in one_pass_unreadable] == ["bad", "pair"]
    assert matcher.stats()["records"] == 7 and matcher.stats()["images"] == 7
