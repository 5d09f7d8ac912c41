"""Benchmark loading Visual Genome at its real size: uncached parse, cached load, dataset dicts.

Generates ``image_data.json`` and ``objects.json`` in the VG v1.4 format with the real counts
(108,077 images, ~3.8M objects, ~7k synsets with Zipf-like frequencies, the 80 COCO classes'
synsets among the frequent ones), then runs every measurement in a fresh process and prints
wall time and peak resident memory (``VmHWM``), both total and above the process's
baseline after imports. Not a test: it takes minutes and ~1 GB of disk.

    python bench/bench_vg_load.py [--workdir DIR] [--naive]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

NUM_IMAGES = 108_077
NUM_OBJECTS = 3_800_000
NUM_SYNSETS = 7_000


def _synset_vocabulary(rng):
    """NUM_SYNSETS synsets, most frequent first; COCO's 80 at random ranks below 2000."""
    import maskx_d2  # noqa: F401
    from maskx_d2.data.datasets.visual_genome.loading import COCO_NAMES
    from maskx_d2.data.datasets.visual_genome.vocab import COCO_TO_VG_MANUAL

    coco = [COCO_TO_VG_MANUAL.get(n, n.replace(" ", "_") + ".n.01") for n in COCO_NAMES]
    vocab = [f"word_{i}.n.0{1 + i % 3}" for i in range(NUM_SYNSETS - len(coco))]
    for rank, s in zip(sorted(rng.choice(2000, len(coco), replace=False)), coco):
        vocab.insert(int(rank), s)
    return vocab


def generate(workdir: str, seed: int = 0) -> None:
    """Write the two VG files into ``workdir`` (skipped when they already exist)."""
    image_data = os.path.join(workdir, "image_data.json")
    objects = os.path.join(workdir, "objects.json")
    if os.path.exists(image_data) and os.path.exists(objects):
        return
    rng = np.random.default_rng(seed)
    vocab = _synset_vocabulary(rng)
    zipf = 1.0 / np.arange(1, NUM_SYNSETS + 1)
    syn = rng.choice(NUM_SYNSETS, size=NUM_OBJECTS, p=zipf / zipf.sum())
    # ~6% of real VG objects have no synset and ~2% several.
    nsyn = rng.choice(3, size=NUM_OBJECTS, p=[0.06, 0.92, 0.02])
    second = rng.integers(0, NUM_SYNSETS, size=NUM_OBJECTS)
    per_image = rng.multinomial(NUM_OBJECTS, np.full(NUM_IMAGES, 1.0 / NUM_IMAGES))
    xywh = rng.integers(0, 500, size=(NUM_OBJECTS, 4)) + np.array([0, 0, 1, 1])
    image_ids = np.arange(1, NUM_IMAGES + 1)
    coco_ids = np.full(NUM_IMAGES, -1)
    has_coco = rng.random(NUM_IMAGES) < 0.47
    coco_ids[has_coco] = rng.choice(581_929, int(has_coco.sum()), replace=False) + 1

    def url(i):
        return f"https://cs.stanford.edu/people/rak248/VG_100K{'' if i < 61_000 else '_2'}/{i}.jpg"

    with open(image_data, "w") as f:
        json.dump(
            [
                {
                    "width": 800,
                    "url": url(int(i)),
                    "height": 600,
                    "image_id": int(i),
                    "coco_id": None if c < 0 else int(c),
                    "flickr_id": None,
                }
                for i, c in zip(image_ids, coco_ids)
            ],
            f,
        )
    name_of = [json.dumps([s.split(".")[0].replace("_", " ")]) for s in vocab]
    with open(objects, "w") as f:
        f.write("[")
        k = 0
        for n, image_id in zip(per_image.tolist(), image_ids.tolist()):
            parts = []
            for j in range(k, k + n):
                s, m = int(syn[j]), int(nsyn[j])
                synsets = ["[]", f'["{vocab[s]}"]', f'["{vocab[s]}", "{vocab[second[j]]}"]'][m]
                x, y, w, h = xywh[j].tolist()
                parts.append(
                    f'{{"synsets": {synsets}, "h": {h}, "object_id": {j + 1}, '
                    f'"merged_object_ids": [], "names": {name_of[s]}, "w": {w}, "y": {y}, '
                    f'"x": {x}}}'
                )
            k += n
            sep = ", " if image_id > 1 else ""
            f.write(
                f'{sep}{{"image_id": {image_id}, "objects": [{", ".join(parts)}], '
                f'"image_url": "{url(image_id)}"}}'
            )
        f.write("]")


def _peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over execve, so a child would report its parent's peak (the generator's)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _measure(workdir: str, what: str) -> None:
    """Child process: run one measurement, print a json line."""
    import maskx_d2  # noqa: F401
    from maskx_d2.data.datasets.visual_genome.loading import load_vg3k_json
    from maskx_d2.data.datasets.visual_genome.tables import load_vg_tables

    base = _peak_rss_mib()
    files = [os.path.join(workdir, f) for f in ("image_data.json", "objects.json")]
    start = time.perf_counter()
    if what == "naive":
        with open(files[1]) as f:
            n = sum(len(e["objects"]) for e in json.load(f))
    elif what == "train_dicts":
        dicts = load_vg3k_json(workdir, "train", cache_dir=os.path.join(workdir, "cache"))
        n = sum(len(d["annotations"]) for d in dicts)
    else:
        n = len(load_vg_tables(*files, cache_dir=os.path.join(workdir, "cache")).object_synsets)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mib": _peak_rss_mib(), "base_mib": base, "n": n}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", help="folder for the generated files (default: a tmp dir)")
    parser.add_argument("--naive", action="store_true", help="also time json.load (~GBs)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return _measure(args.workdir, args.measure)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        start = time.perf_counter()
        generate(workdir)
        size = os.path.getsize(os.path.join(workdir, "objects.json")) / 2**20
        print(
            f"objects.json: {size:.0f} MiB, {NUM_IMAGES} images, {NUM_OBJECTS} objects, "
            f"{NUM_SYNSETS} synsets (ready in {time.perf_counter() - start:.0f} s)"
        )
        cache = os.path.join(workdir, "cache")
        for f in os.listdir(cache) if os.path.isdir(cache) else []:
            os.remove(os.path.join(cache, f))  # the first load must parse
        runs = [
            ("load_vg_tables, no cache (parse + write)", "tables"),
            ("load_vg_tables, cached", "tables"),
            ("vg3k_train dataset dicts (cached tables)", "train_dicts"),
        ]
        if args.naive:
            runs.append(("json.load(objects.json) for comparison", "naive"))
        print(f"| {'step':<42} | time (s) | peak RSS (MiB) | above imports (MiB) | items |")
        print(f"|{'-' * 44}|---------:|---------------:|--------------------:|------:|")
        for label, what in runs:
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--workdir", workdir, "--measure", what],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            print(
                f"| {label:<42} | {r['seconds']:8.1f} | {r['peak_mib']:14.0f} | "
                f"{r['peak_mib'] - r['base_mib']:19.0f} | {r['n']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
