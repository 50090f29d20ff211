"""Duplicate images on real files: re-encoded and resized copies, byte copies, bad images."""

import base64
import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vqaflow.digests import content_digest
from vqaflow.quality import image_dedup
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
    distance = image_dedup.hamming(image_dedup.image_key(copy), image_dedup.image_key(DEMO / "lighthouse.png"))
    assert found[0]["distance"] == distance and 0 <= distance <= 4


def test_different_demo_images_are_not_duplicates(tmp_path):
    names = sorted(path.name for path in DEMO.iterdir())
    keys = [image_dedup.image_key(str(DEMO / name)) for name in names]
    assert min(image_dedup.hamming(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]) > 4
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
        image_dedup.hamming(image_dedup.image_key(light), image_dedup.image_key("lighthouse.png", root=DEMO)),
        image_dedup.hamming(image_dedup.image_key(fruit), image_dedup.image_key("fruit_bowl.png", root=DEMO)),
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
    assert isinstance(image_dedup.image_key(path, "perceptual"), int)
    assert image_dedup.image_key(path, "exact") == content_digest(path.read_bytes())


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
