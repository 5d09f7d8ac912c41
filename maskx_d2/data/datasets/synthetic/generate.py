"""Writing a split of the synthetic shapes v2 as COCO json + PNG images, cached by a manifest.

Data lives under ``<root>/synthetic_shapes_v2/<split>/``: ``instances.json`` (polygon masks,
and per annotation ``synthetic_role``: "single", or "back" / "front" of a stack), ``images/``
and ``manifest.json``, which holds a hash of the generator version and every parameter and is
written last: a split is reused only when its manifest matches. Generation is deterministic:
same parameters, same bytes, given the same numpy and OpenCV.

The manifest also records the split's content digest (:func:`content_digest`: the annotations
and every image's pixels; a split generated before digests existed gets it on its next load),
logged whenever the split is loaded: two runs saw the same data only if their digests agree,
whatever machine or library versions produced it.
"""

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict
from typing import List

import cv2
import numpy as np
from iopath.common.file_io import file_lock

from ....atomic_files import write_atomic
from .classes import CLASS_PARTS, STACK_SHAPES, SYNTHETIC_CLASSES
from .scene import SceneParams, render_scene

__all__ = [
    "DATASET_FOLDER",
    "DIGEST_KEY",
    "content_digest",
    "generate_synthetic_shapes",
    "mask_to_polygons",
    "record_content_digest",
]

logger = logging.getLogger(__name__)

# Bump when the output of the generator changes for the same parameters (invalidates caches).
GENERATOR_VERSION = 6
DATASET_FOLDER = "synthetic_shapes_v2"
DIGEST_KEY = "content_sha256"  # in manifest.json


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (flat x, y lists) of a binary (H, W) mask, holes included.

    COCO polygons of one object are unioned, so a hole cannot be a polygon of its own; each hole
    is spliced into its outer contour through a zero-width cut, which pycocotools' even-odd
    rasterisation turns back into the hole. Contours are traced on the mask upsampled 2x, whose
    boundary pixels' centres sit a quarter pixel inside the original pixel edges: the polygons
    rasterise back to the mask.
    """
    big = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]  # (N, 4): next, previous, first child, parent
    polygons = []
    for i, contour in enumerate(contours):
        if hierarchy[i][3] != -1:
            continue  # a hole; handled with its outer contour
        outer = contour[:, 0, :].astype(np.float64)
        child = hierarchy[i][2]
        while child != -1:
            hole = contours[child][:, 0, :].astype(np.float64)
            dist = ((outer[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
            a, b = np.unravel_index(dist.argmin(), dist.shape)
            outer = np.concatenate([outer[: a + 1], hole[b:], hole[: b + 1], outer[a:]])
            child = hierarchy[child][0]
        if len(outer) >= 3:
            polygons.append(((outer + 0.5) / 2).ravel().tolist())
    return polygons


def _annotation(mask: np.ndarray, class_index: int, image_id: int, ann_id: int) -> dict:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": class_index + 1,
        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
        "area": int(mask.sum()),
        "iscrowd": 0,
        "segmentation": mask_to_polygons(mask),
    }


def _class_sequence(rng: np.random.Generator, n: int) -> np.ndarray:
    """n class indices, balanced: concatenated random permutations of all classes."""
    k = len(SYNTHETIC_CLASSES)
    return np.concatenate([rng.permutation(k) for _ in range(-(-n // k) + 1)])


def _can_stack(a: int, b: int, whole_shapes=()) -> bool:
    """Two classes can form a stack: one shape of :data:`STACK_SHAPES`, two colours. A shape
    kept whole (:attr:`SceneParams.whole_shapes`) cannot: one of the two would be behind."""
    (shape_a, colour_a), (shape_b, colour_b) = CLASS_PARTS[a], CLASS_PARTS[b]
    stackable = shape_a in STACK_SHAPES and shape_a not in whole_shapes
    return shape_a == shape_b and stackable and colour_a != colour_b


def _plan_units(rng: np.random.Generator, num_images: int, scene: SceneParams) -> List[list]:
    """Per image, its units: a pair of class indices for a stack, or ``(k, None)``.

    Classes come from one balanced sequence. A stack takes two consecutive entries; when they
    cannot stack, the second is swapped with the next entry that can, which keeps the counts
    balanced.
    """
    low, high = scene.num_units_range
    num_units = rng.integers(low, high + 1, size=num_images)
    is_stack = rng.random(int(num_units.sum())) < scene.stack_probability
    sequence = _class_sequence(rng, int(num_units.sum() + is_stack.sum()))
    plans, pos, unit = [], 0, 0
    for n in num_units:
        units = []
        for _ in range(n):
            first = int(sequence[pos])
            partner = next(
                (
                    j
                    for j in range(pos + 1, len(sequence))
                    if _can_stack(first, sequence[j], scene.whole_shapes)
                ),
                None,
            )
            if not is_stack[unit] or partner is None:
                units.append((first, None))
                pos += 1
            else:
                sequence[[pos + 1, partner]] = sequence[[partner, pos + 1]]
                units.append((first, int(sequence[pos + 1])))
                pos += 2
            unit += 1
        plans.append(units)
    return plans


# Scene parameters added after GENERATOR_VERSION 6, with the value that reproduces version 6:
# they enter the cache key only when set otherwise, so the splits (and digests) documented
# before them stay valid.
_LATER_SCENE_PARAMS = {
    "bar_half_width": SceneParams().bar_half_width,
    "whole_shapes": SceneParams().whole_shapes,
    "stripe_shade": SceneParams().stripe_shade,
}


def _params(num_images, seed, scene: SceneParams) -> dict:
    scene_params = asdict(scene)
    for name, unchanged in _LATER_SCENE_PARAMS.items():
        if scene_params[name] == unchanged:
            del scene_params[name]
    return {
        "version": GENERATOR_VERSION,
        "num_images": num_images,
        "seed": seed,
        "scene": scene_params,
        "classes": SYNTHETIC_CLASSES,
    }


def _read_manifest(manifest_path: str, json_path: str, key: str):
    """The manifest of a complete split made with ``key``, else None."""
    if not (os.path.isfile(json_path) and os.path.isfile(manifest_path)):
        return None
    with open(manifest_path) as f:
        manifest = json.load(f)
    return manifest if manifest.get("hash") == key else None


def content_digest(split_dir: str) -> str:
    """SHA-256 of a split's ``instances.json`` bytes and its images' decoded pixels.

    Pixels, not PNG bytes: two PNG encoders may compress the same image differently. Images are
    read in file-name order, each contributing its name, its (H, W, C) shape and its BGR bytes.
    """
    digest = hashlib.sha256()
    with open(os.path.join(split_dir, "instances.json"), "rb") as f:
        digest.update(f.read())
    image_dir = os.path.join(split_dir, "images")
    for name in sorted(os.listdir(image_dir)):
        image = cv2.imread(os.path.join(image_dir, name), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{os.path.join(image_dir, name)}: not a readable image")
        digest.update(name.encode())
        digest.update(repr(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def generate_synthetic_shapes(
    root: str,
    split: str,
    num_images: int,
    seed: int,
    scene: SceneParams = SceneParams(),
) -> str:
    """Generate (or reuse) one split under ``<root>/synthetic_shapes_v2/<split>/``.

    Args:
        root: dataset root, e.g. ``$DETECTRON2_DATASETS``.
        split: folder name of the split.
        num_images: number of images; each holds ``scene.num_units_range`` stacks or single
            objects (fewer when one cannot be placed, which is rare).
        seed: seed of everything random; same arguments give byte-identical files.
        scene: rendering parameters.

    Returns:
        the path of the split's COCO instances json (images in ``images/`` next to it).
        Existing data is reused when its manifest matches the generator version and all
        parameters.
    """
    out_dir = os.path.join(root, DATASET_FOLDER, split)
    json_path = os.path.join(out_dir, "instances.json")
    manifest_path = os.path.join(out_dir, "manifest.json")
    params = _params(num_images, seed, scene)
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    manifest = _read_manifest(manifest_path, json_path, key)
    if manifest is None or DIGEST_KEY not in manifest:
        os.makedirs(out_dir, exist_ok=True)
        with file_lock(manifest_path):  # one writer when several processes load the dataset
            manifest = _read_manifest(manifest_path, json_path, key)
            if manifest is None:
                manifest = _write_split(out_dir, json_path, manifest_path, key, params, scene)
            elif DIGEST_KEY not in manifest:  # written before digests were recorded
                manifest = record_content_digest(out_dir)
    logger.info("%s: synthetic shapes split, content sha256 %s", out_dir, manifest[DIGEST_KEY])
    return json_path


def record_content_digest(split_dir: str) -> dict:
    """Write the split's :func:`content_digest` into its manifest; returns the manifest."""
    manifest_path = os.path.join(split_dir, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest[DIGEST_KEY] = content_digest(split_dir)
    _write_manifest(manifest_path, manifest)
    return manifest


def _write_manifest(path: str, manifest: dict) -> None:
    write_atomic(path, json.dumps(manifest, sort_keys=True, indent=1).encode())


def _write_split(out_dir, json_path, manifest_path, key, params, scene) -> dict:
    """Render a split and write its json, then its manifest (returned) last."""
    if os.path.isfile(manifest_path):
        os.remove(manifest_path)  # an interrupted run must not look complete
    coco = _write_images(os.path.join(out_dir, "images"), params, scene)
    write_atomic(json_path, json.dumps(coco, sort_keys=True).encode())
    # Written last: a manifest means the split is complete.
    manifest = {"hash": key, "params": params, DIGEST_KEY: content_digest(out_dir)}
    _write_manifest(manifest_path, manifest)
    return manifest


def _write_images(image_dir: str, params: dict, scene: SceneParams) -> dict:
    """Render and save the images of a split; returns its COCO instances dict."""
    shutil.rmtree(image_dir, ignore_errors=True)  # no stale images of older parameters
    os.makedirs(image_dir)
    seed, num_images = params["seed"], params["num_images"]
    rng = np.random.default_rng(seed)
    plans = _plan_units(rng, num_images, scene)
    images, annotations = [], []
    for i in range(num_images):
        image_rng = np.random.default_rng([seed, i])  # images independent of each other
        image, objects = render_scene(image_rng, CLASS_PARTS, plans[i], scene)
        file_name = f"{i:06d}.png"
        cv2.imwrite(os.path.join(image_dir, file_name), image[:, :, ::-1])
        size = scene.image_size
        images.append({"id": i + 1, "file_name": file_name, "height": size, "width": size})
        for obj in objects:
            ann = _annotation(obj.visible_mask, obj.class_index, i + 1, len(annotations) + 1)
            ann["synthetic_role"] = obj.role
            if obj.role == "front":  # painted right after its back
                ann["synthetic_partner"] = ann["id"] - 1
                annotations[-1]["synthetic_partner"] = ann["id"]
            annotations.append(ann)
    categories = [
        {"id": i + 1, "name": name, "supercategory": shape}
        for i, (name, (shape, _)) in enumerate(zip(SYNTHETIC_CLASSES, CLASS_PARTS))
    ]
    return {
        "info": {"description": "maskx_d2 synthetic shapes v2", "params": params},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
