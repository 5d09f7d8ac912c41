#!/usr/bin/env python
"""Check that generated synthetic splits hold the data their manifests (and the docs) name.

    python tools/synthetic_digest.py --root datasets [--record]

For every split under ``<root>/synthetic_shapes_v2/`` prints the content digest its manifest
records and the one recomputed from its files (``content_digest``: annotations and decoded
pixels). Exits 1 when a split's files no longer match its manifest. ``--record`` writes the
recomputed digest into manifests that have none (splits generated before digests existed;
loading such a split for training does the same).
The generator is deterministic for given numpy and OpenCV; compare the digests with those in
docs/synthetic_shapes_v2.md ("Is it the same data?") to know whether your runs trained on the
images the documented ones did.
"""

import argparse
import json
import os
import sys

from maskx_d2.data.datasets.synthetic import (
    DATASET_FOLDER,
    DIGEST_KEY,
    content_digest,
    record_content_digest,
)


def check_split(split_dir: str, record: bool) -> bool:
    """Print one split's recorded and recomputed digests; True when they agree (or none was
    recorded and ``record`` is off)."""
    manifest_path = os.path.join(split_dir, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    recorded = manifest.get(DIGEST_KEY)
    name = os.path.basename(split_dir)
    if recorded is None:
        if record:  # recording computes the digest: read it back rather than hash twice
            actual = record_content_digest(split_dir)[DIGEST_KEY]
        else:
            actual = content_digest(split_dir)
        print(f"{name}: {actual} (no digest recorded{'; recorded now' if record else ''})")
        return True
    actual = content_digest(split_dir)
    status = "ok" if recorded == actual else f"MISMATCH: the manifest records {recorded}"
    print(f"{name}: {actual} {status}")
    return recorded == actual


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.environ.get("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--record", action="store_true", help="add missing digests to manifests")
    args = parser.parse_args(argv)
    base = os.path.join(os.path.expanduser(args.root), DATASET_FOLDER)
    splits = sorted(
        os.path.join(base, d)
        for d in (os.listdir(base) if os.path.isdir(base) else [])
        if os.path.isfile(os.path.join(base, d, "manifest.json"))
    )
    if not splits:
        print(f"no generated split with a manifest under {base}", file=sys.stderr)
        return 1
    results = [check_split(split, args.record) for split in splits]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
