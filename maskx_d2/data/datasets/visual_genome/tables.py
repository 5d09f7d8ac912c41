"""Parse Visual Genome's ``image_data.json`` and ``objects.json`` once into compact arrays.

The raw files (v1.4: 108,077 images, ~3.8M objects, ~400 MB) are streamed entry by entry
(:func:`iter_json_array`) and reduced to numpy arrays: per image its id, size, COCO id and
file; per synset its total count; per object with exactly one synset that synset and its
box. Objects with zero or several synsets only contribute to the synset counts, since no
3000-class vocabulary can ever keep them. Values are checked as they are read (types, integer
ranges, per image) and on the final arrays (finite boxes, unique image ids); a bad one raises
ValueError naming the file, image and object (policy: docs/visual_genome.md); degenerate
boxes are kept here and skipped, counted, by ``vg_dicts.vg_dataset_dicts``. The result is
cached as an uncompressed ``.npz`` validated by the source files' paths, sizes and mtimes, so
later loads take about a second.
"""

import hashlib
import itertools
import json
import logging
import os
from array import array
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from ...annotation_geometry import is_integer
from ...json_stream import iter_json_array

__all__ = ["VGTables", "load_vg_tables", "parse_vg_tables"]

logger = logging.getLogger(__name__)

# Bump when the arrays below change meaning: old caches are then rebuilt.
_CACHE_VERSION = 2


@dataclass(frozen=True)
class VGTables:
    """Visual Genome annotations as arrays. I images, S synsets, N single-synset objects.

    Attributes:
        image_ids, widths, heights: (I,) int64 / int32, in ``image_data.json`` order.
        coco_ids: (I,) int64, the image's COCO id, -1 when it has none.
        file_names: (I,) str, the url's last two path components ("VG_100K_2/1.jpg").
        synsets: (S,) str, every synset of every object, in order of first occurrence.
        synset_counts: (S,) int64, occurrences over all objects; an object with several
            synsets counts once for each (as the official ``seg_every_thing`` script).
        object_image_ids: (N,) int64, image of each object with exactly one synset.
        object_synsets: (N,) int32, index into ``synsets``.
        object_boxes: (N, 4) float32, x, y, w, h in pixels (XYWH_ABS).
        num_objects: () int64, all objects in ``objects.json`` (with any number of synsets).
    """

    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    coco_ids: np.ndarray
    file_names: np.ndarray
    synsets: np.ndarray
    synset_counts: np.ndarray
    object_image_ids: np.ndarray
    object_synsets: np.ndarray
    object_boxes: np.ndarray
    num_objects: np.ndarray


# What a hostile value raises while it is read into the arrays: a missing key, a value of the
# wrong type (array("f") rejects strings and None), an integer beyond the array's type.
_BAD_VALUE_ERRORS = (KeyError, TypeError, AttributeError, OverflowError)


def _bad_value(path: str, where: str, err: Exception) -> ValueError:
    what = f"missing required key {err}" if isinstance(err, KeyError) else f"bad value ({err})"
    return ValueError(f"{path}: {where}: {what}")


def _where(i: int, entry, obj=None) -> str:
    """'image entry #i (image id N), object id M', with what is known of a broken entry."""
    where = f"image entry #{i}"
    if isinstance(entry, dict):
        where += f" (image id {entry.get('image_id')!r})"
    if isinstance(obj, dict):
        where += f", object id {obj.get('object_id')!r}"
    return where


def _check_image_entry(image_id, width, height, coco_id, url) -> str:
    """The image's file name, ``<folder>/<file>`` from its url; TypeError for a value that no
    image can have."""
    if not (is_integer(width) and is_integer(height) and width > 0 and height > 0):
        raise TypeError(f"width and height must be positive integers, got {width!r}, {height!r}")
    if not (is_integer(image_id) and (coco_id is None or is_integer(coco_id))):
        raise TypeError(f"image_id and coco_id must be integers, got {image_id!r}, {coco_id!r}")
    # The VG release stores images as <folder>/<id>.jpg, folder = VG_100K or VG_100K_2.
    parts = url.rsplit("/", 2)[-2:]
    if len(parts) != 2 or not all(parts) or "\x00" in url:
        raise TypeError(f"url must end in <folder>/<file>, got {url!r}")
    return "/".join(parts)


def _parse_image_data(path: str):
    ids, widths, heights, coco_ids, files = array("q"), array("i"), array("i"), array("q"), []
    for i, entry in enumerate(iter_json_array(path)):
        try:
            keys = ("image_id", "width", "height", "coco_id", "url")
            image_id, width, height, coco_id, url = (entry[k] for k in keys)
            files.append(_check_image_entry(image_id, width, height, coco_id, url))
            ids.append(image_id)
            widths.append(width)
            heights.append(height)
            coco_ids.append(-1 if coco_id is None else coco_id)
        except _BAD_VALUE_ERRORS as e:
            raise _bad_value(path, _where(i, entry), e) from e
    image_ids = np.frombuffer(ids, np.int64)
    unique, counts = np.unique(image_ids, return_counts=True)
    if (counts > 1).any():  # objects would go to one of the images, the other left empty
        raise ValueError(f"{path}: duplicate image id {int(unique[counts > 1][0])}")
    return dict(
        image_ids=image_ids,
        widths=np.frombuffer(widths, np.int32),
        heights=np.frombuffer(heights, np.int32),
        coco_ids=np.frombuffer(coco_ids, np.int64),
        file_names=np.array(files, dtype=str),
    )


def _parse_objects(path: str):
    index, counts = {}, []  # synset -> position in counts, first-occurrence order
    syn, boxes, entry_ids, entry_sizes = array("i"), array("f"), array("q"), array("q")
    num_objects = 0
    for i, entry in enumerate(iter_json_array(path)):
        start, obj = len(syn), None
        try:
            objects, image_id = entry["objects"], entry["image_id"]
            if not (type(objects) is list and is_integer(image_id)):
                raise TypeError(
                    f"need an integer image_id and a list of objects, got {image_id!r} and a "
                    f"{type(objects).__name__}"
                )
            entry_ids.append(image_id)
            for obj in objects:
                synsets = obj["synsets"]
                if type(synsets) is not list:  # a string would be read as one synset per letter
                    raise TypeError(f"synsets must be a list, got {synsets!r}")
                for s in synsets:
                    k = index.get(s)
                    if k is None:  # new synsets are rare (~7k): check them here
                        if not (type(s) is str and s and "\x00" not in s):
                            raise TypeError(f"a synset must be a non-empty string, got {s!r}")
                        k = index[s] = len(counts)
                        counts.append(1)
                    else:
                        counts[k] += 1
                if len(synsets) == 1:
                    syn.append(k)
                    # bool is read as 0/1 here, as COCO validation reads a bbox; telling it
                    # apart would cost a type check per coordinate of 3.8M objects.
                    boxes.extend((obj["x"], obj["y"], obj["w"], obj["h"]))
            num_objects += len(objects)
        except _BAD_VALUE_ERRORS as e:
            raise _bad_value(path, _where(i, entry, obj), e) from e
        entry_sizes.append(len(syn) - start)
    object_boxes = np.frombuffer(boxes, np.float32).reshape(-1, 4)
    entry_sizes = np.frombuffer(entry_sizes, np.int64)
    _check_finite_boxes(path, object_boxes, entry_sizes)
    synsets = np.array(sorted(index, key=index.get) if index else [], dtype=str)
    return dict(
        synsets=synsets,
        synset_counts=np.array(counts, dtype=np.int64),
        object_image_ids=np.repeat(np.frombuffer(entry_ids, np.int64), entry_sizes),
        object_synsets=np.frombuffer(syn, np.int32),
        object_boxes=object_boxes,
        num_objects=np.array(num_objects, dtype=np.int64),
    )


def _check_finite_boxes(path: str, boxes: np.ndarray, entry_sizes: np.ndarray) -> None:
    """Raise ValueError naming the first object whose box (N, 4) has NaN/inf, including values
    beyond float32 (|v| above ~3.4e38). Checked on the whole array; the file is read again only to
    find the object id for the message."""
    bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
    if len(bad) == 0:
        return
    ends = np.cumsum(entry_sizes)
    i = int(np.searchsorted(ends, bad[0], side="right"))  # its entry in objects.json
    j = int(bad[0] - (ends[i] - entry_sizes[i]))  # its rank among the entry's kept objects
    entry = next(itertools.islice(iter_json_array(path), i, None))
    obj = [o for o in entry["objects"] if len(o["synsets"]) == 1][j]
    box = {k: obj[k] for k in "xywh"}
    raise ValueError(
        f"{path}: {_where(i, entry, obj)}: box coordinates must be finite numbers within "
        f"float32 range (|v| < 3.4e38), got {box}"
    )


def parse_vg_tables(image_data_json: str, objects_json: str) -> VGTables:
    """Read both VG files (no cache). Raises ValueError naming the file, and the image and
    object where one is at fault, on bad content (policy: docs/visual_genome.md)."""
    return VGTables(**_parse_image_data(image_data_json), **_parse_objects(objects_json))


def _source_key(*paths: str) -> str:
    stats = [(os.path.abspath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    return json.dumps({"version": _CACHE_VERSION, "files": stats})


def _cache_path(cache_dir: str, image_data_json: str, objects_json: str) -> str:
    sources = "\n".join(os.path.abspath(p) for p in (image_data_json, objects_json))
    digest = hashlib.sha1(sources.encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f"vg_tables_{digest}.npz")


def _read_cache(path: str, key: str) -> Optional[VGTables]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                logger.info(f"VG cache {path} is stale (source files changed): rebuilding")
                return None
            return VGTables(**{f.name: data[f.name] for f in fields(VGTables)})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as e:  # truncated or foreign file: just rebuild
        logger.warning(f"Ignoring unreadable VG cache {path}: {e}")
        return None


def _write_cache(path: str, key: str, tables: VGTables) -> None:
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        arrays = {f.name: getattr(tables, f.name) for f in fields(VGTables)}
        np.savez(tmp, key=np.array(key), **arrays)
        os.replace(tmp, path)  # atomic: concurrent readers never see a partial file
    except OSError as e:
        logger.warning(f"Could not write the VG cache {path} ({e}); the next load parses again")
        if os.path.exists(tmp):
            os.remove(tmp)


def load_vg_tables(
    image_data_json: str, objects_json: str, cache_dir: Optional[str] = None
) -> VGTables:
    """Load the VG annotations as :class:`VGTables`, from the cache when it is up to date.

    Args:
        image_data_json, objects_json: the VG v1.4 files.
        cache_dir: where the ``.npz`` cache lives; default: the folder of ``objects_json``.
            The cache is rebuilt whenever either file's size or mtime changes; if the folder
            is not writable the files are parsed on every call (with a warning).
    """
    for p in (image_data_json, objects_json):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"Visual Genome file not found: {p}")
    cache_dir = os.path.dirname(os.path.abspath(objects_json)) if cache_dir is None else cache_dir
    path = _cache_path(cache_dir, image_data_json, objects_json)
    key = _source_key(image_data_json, objects_json)
    tables = _read_cache(path, key)
    if tables is None:
        logger.info(f"Parsing {objects_json} (once; cached to {path})")
        tables = parse_vg_tables(image_data_json, objects_json)
        _write_cache(path, key, tables)
    return tables
