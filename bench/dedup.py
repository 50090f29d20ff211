"""Cost of image dedup: perceptual hashing throughput and index search at scale.

1. Hashing: N distinct photo-like JPEGs (noise + gradients, so decoding and the key do
   real work) at two sizes, keyed through ``find_duplicates`` (the perceptual key: pHash,
   texture and colour thumbnail from one 32×32 reduction) with 1 and 2 worker processes;
   reports images per second.
2. Search: 10^6 random 64-bit hashes (plus near copies) through ``HashIndex`` with
   max_distance 4, the part that must not be quadratic; reports lookups per second.

    python bench/dedup.py --images 200 --search 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from PIL import Image  # noqa: E402

from vqaflow.quality import image_dedup  # noqa: E402


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A textured, photo-like image: noise at several scales, a Mandelbrot channel and
    fine sensor-like noise, so that a JPEG at quality 90 is about as large as a photo's
    (a 12-megapixel one is a few MB; decoding cost grows with the file size)."""
    random.seed(seed)
    layers = [Image.effect_noise((s, s * size[1] // size[0] + 1), 60).resize(size, Image.BICUBIC)
              for s in (4, 8, 16, 32, 64, 128)]
    grey = layers[0]
    for k, layer in enumerate(layers[1:], 1):
        grey = Image.blend(grey, layer, 1 / (k + 1))
    grey = Image.blend(grey, Image.effect_noise(size, 64), 0.15)
    x = random.uniform(-2.0, 0.0)
    return Image.merge("RGB", [grey, grey.transpose(Image.FLIP_LEFT_RIGHT),
                               Image.effect_mandelbrot(size, (x, -1.2, x + 2.5, 1.2), 50)])


def bench_hashing(count: int, size: tuple[int, int], workdir: Path) -> list[dict]:
    paths = []
    for i in range(count):
        path = workdir / f"{size[0]}x{size[1]}_{i}.jpg"
        if not path.exists():
            photo(size, i).save(path, "JPEG", quality=90)
        paths.append(str(path))
    rows = []
    megabytes = sum(os.path.getsize(p) for p in paths) / count / 1e6
    image_dedup.image_key(paths[0])  # imports imagehash and scipy outside the timing
    for workers in (1, 2):
        stats: dict = {}
        cpu = time.process_time()
        image_dedup.find_duplicates([(str(i), [p]) for i, p in enumerate(paths)], "perceptual", 4,
                              workers=workers, stats=stats)
        cpu = time.process_time() - cpu
        rows.append({"size": f"{size[0]}x{size[1]}", "jpeg_mb": round(megabytes, 2), "images": count,
                     "workers": workers, "seconds": stats["seconds"],
                     "images_per_second": stats["images_per_second"],
                     # in-process CPU per image: meaningful for workers=1 on a busy machine
                     "cpu_ms_per_image": round(cpu / count * 1000, 1) if workers == 1 else None})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_search(count: int, max_distance: int = 4) -> dict:
    rng = random.Random(0)
    keys = [rng.getrandbits(64) for _ in range(count)]
    for i in range(0, count, 10):  # every tenth is a near copy of an earlier key
        if i:
            keys[i] = keys[rng.randrange(i)] ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64))
    index = image_dedup.HashIndex(max_distance, expected=count)
    started, cpu = time.perf_counter(), time.process_time()
    matches = 0
    for key in keys:
        if index.search(key):
            matches += 1
        else:
            index.add(key)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    row = {"hashes": count, "max_distance": max_distance, "bands": index.bands, "seconds": round(seconds, 2),
           "cpu_seconds": round(cpu, 2), "lookups_per_cpu_second": round(count / cpu), "matches": matches}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--search", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results-dedup.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hashing = []
        for size in ((1024, 768), (4000, 3000)):
            count = args.images if size[0] < 2000 else max(20, args.images // 5)
            hashing += bench_hashing(count, size, Path(tmp))
    search = bench_search(args.search) if args.search else None
    result = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                          "python": platform.python_version(),
                          "platform": platform.platform()},
              "hashing": hashing, "search": search}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
