"""A hostile corpus of region annotation files (COCO, LabelMe, RLE) and the outcome each must have.

``generate_corpus(root, seed)`` writes one labelled tree for ``build_dataset`` and
``training.evaluate`` (raw folder): each case a small photo and a COCO or LabelMe JSON built to
crash a reader, exhaust memory or lose an input silently (numbers beyond float, 4,301-digit
integers, odd polygons, RLE counts that do not add up to the image, duplicate or unknown ids,
two JSONs claiming one image). Every case sits in its own folder, so cases never meet; names,
numbers, polygons and sizes vary with ``seed``.

Each ``Case`` names a path and its outcome: for an image ``KEPT`` (a record) or the reason of its
reject row; for an annotation file ``USED`` (no reject row) or the reason of its reject rows and
how many it has (``rows``: one per refused entry). ``write_large_coco`` writes one COCO export of
many images, to time the reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corrosion.testing import region_files as rf
from corrosion.testing.hostile import IGNORED, KEPT, USED

W, H = 48, 36  # every photo: tiny, so the corpus builds in well under a second


@dataclass(frozen=True)
class Case:
    kind: str
    path: str  # relative to the corpus root
    dataset: str  # KEPT / USED / a reject reason
    rows: int = 1  # reject rows this path gets with that reason (annotation files)


@dataclass
class Corpus:
    root: Path
    cases: list[Case] = field(default_factory=list)

    def add(self, kind: str, path: str, dataset: str, rows: int = 1) -> None:
        self.cases.append(Case(kind, path, dataset, rows))


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def _huge(rng: np.random.Generator, least: int) -> str:
    """An integer literal of at least ``least`` digits (seeded length and digits)."""
    digits = int(rng.integers(least, least + 300))
    return str(int(rng.integers(1, 10))) + "".join(str(d) for d in rng.integers(0, 10, digits - 1))


def _photo(c: Corpus, rng: np.random.Generator, rel: str, n: int = 1) -> rf.RegionPhoto:
    photo = rf.region_photo(rng, W, H, n)
    _write(c.root / rel, photo.png())
    return photo


def _coco_doc(entries: list[tuple[int, str]], annotations: list[dict], categories=None) -> dict:
    images = [{"id": i, "file_name": name, "width": W, "height": H} for i, name in entries]
    cats = categories if categories is not None else [{"id": 1, "name": "rust"}]
    return {"images": images, "annotations": annotations, "categories": cats}


def _annotation(number: int, image_id: object, polygon, **extra) -> dict:
    xs, ys = polygon[0::2], polygon[1::2]
    bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    ann = {"id": number, "image_id": image_id, "category_id": 1, "bbox": bbox, "segmentation": [list(polygon)]}
    return {**ann, **extra}


def generate_corpus(root: str | Path, seed: int = 0) -> Corpus:
    """Write the corpus under ``root`` (which must not exist yet) and return its cases."""
    root = Path(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    corpus = Corpus(root)
    tag = f"{seed}_{rng.integers(1_000_000):06d}"
    for write in (_number_cases, _polygon_cases, _rle_cases, _id_cases, _claim_cases):
        write(corpus, rng, tag)
    return corpus


def _labelme_case(c: Corpus, rng, kind: str, tag: str, text: Callable[[str, rf.RegionPhoto], str], reason: str):
    """A photo and its LabelMe JSON beside it (same stem): both share the outcome."""
    stem = f"{kind}_{tag}"
    photo = _photo(c, rng, f"{kind}/{stem}.png")
    _write(c.root / kind / f"{stem}.json", text(f"{stem}.png", photo))
    c.add(kind, f"{kind}/{stem}.png", reason)
    c.add(kind + "_json", f"{kind}/{stem}.json", USED if reason == KEPT else reason)


def _coco_case(c: Corpus, rng, kind: str, tag: str, build: Callable, images: list[str], json_rows: tuple[str, int]):
    """Photos under ``kind/images/`` and ``kind/annotations/instances.json`` built by ``build(names, photos, rng)``.

    ``images`` gives each photo's outcome; ``json_rows`` the JSON's (reason or USED, rows)."""
    names = [f"{kind}_{i}_{tag}.png" for i in range(len(images))]
    photos = [_photo(c, rng, f"{kind}/images/{name}") for name in names]
    _write(c.root / kind / "annotations" / "instances.json", build(names, photos, rng))
    for name, outcome in zip(names, images, strict=True):
        c.add(kind, f"{kind}/images/{name}", outcome)
    c.add(kind + "_json", f"{kind}/annotations/instances.json", *json_rows)


SENTINEL = -98765.4321  # stands in a document for a literal json.dumps cannot write


def _with_literal(text: str, place: Callable[[dict], None], literal: str) -> str:
    """``text`` (a JSON document) with the value ``place`` sets to SENTINEL written as ``literal``."""
    doc = json.loads(text)
    place(doc)
    return json.dumps(doc).replace(repr(SENTINEL), literal, 1)


def _first_x(doc: dict) -> None:
    doc["shapes"][0]["points"][0][0] = SENTINEL


def _note(doc: dict) -> None:
    doc["flags"] = {"note": SENTINEL}


def _number_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """Numbers no float holds: each refuses its whole file, whichever field holds it."""
    big = _huge(rng, 310)  # 10**400-like: int() takes it, float() overflows
    long = _huge(rng, 4_301)  # past Python's int-string limit
    _labelme_case(c, rng, "labelme_good", tag, lambda name, p: rf.labelme_json(name, W, H, p.polygons), KEPT)
    for kind, place, literal in (
        ("labelme_huge_point", _first_x, big),
        ("labelme_long_int_unused", _note, long),
        ("labelme_float_overflow", _first_x, "1e999"),
        ("labelme_nan", _note, "NaN"),
        ("labelme_inf", _first_x, "-Infinity"),
    ):
        _labelme_case(
            c, rng, kind, tag,
            lambda name, p, f=place, v=literal: _with_literal(rf.labelme_json(name, W, H, p.polygons), f, v),
            "malformed_json",
        )  # fmt: skip
    _labelme_case(
        c, rng, "labelme_bool_point", tag,
        lambda name, p: _with_literal(rf.labelme_json(name, W, H, p.polygons), _first_x, "true"),
        "malformed_labelme",
    )  # fmt: skip
    # a COCO file that does not parse names no image for sure: its photos are unlabelled, the file is refused
    for kind, literal in (("coco_huge_bbox", big), ("coco_long_int_unused", long)):

        def build(names, photos, rng, literal=literal, kind=kind):
            text = json.dumps(_coco_doc([(1, names[0])], [_annotation(1, 1, photos[0].polygons[0])]))
            if kind == "coco_huge_bbox":
                return _with_literal(text, lambda d: d["annotations"][0]["bbox"].__setitem__(2, SENTINEL), literal)
            return _with_literal(text, lambda d: d.__setitem__("info", {"year": SENTINEL}), literal)

        _coco_case(c, rng, kind, tag, build, ["unlabelled"], ("malformed_json", 1))


def _polygon_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    def good(names, photos, rng):
        anns = [_annotation(i + 1, i + 1, p.polygons[0]) for i, p in enumerate(photos)]
        return json.dumps(_coco_doc(list(enumerate(names, start=1)), anns))

    def odd(names, photos, rng):
        poly = photos[0].polygons[0]
        cut = 2 * int(rng.integers(3, len(poly) // 2)) + 1  # an odd count of coordinates, at least 7
        anns = [_annotation(1, 1, poly[:cut]), _annotation(2, 2, photos[1].polygons[0])]
        return json.dumps(_coco_doc([(1, names[0]), (2, names[1])], anns))

    def short(names, photos, rng):
        return json.dumps(_coco_doc([(1, names[0])], [_annotation(1, 1, photos[0].polygons[0][:4])]))

    _coco_case(c, rng, "coco_good_polygons", tag, good, [KEPT, KEPT], (USED, 0))
    _coco_case(c, rng, "coco_odd_polygon", tag, odd, ["malformed_coco", KEPT], ("malformed_coco", 1))
    _coco_case(c, rng, "coco_two_point_polygon", tag, short, ["degenerate_polygon"], ("degenerate_polygon", 1))


def _rle_of(photo: rf.RegionPhoto) -> dict:
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(photo.mask))
    return {"size": [H, W], "counts": encoded["counts"].decode("ascii")}


def _runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts of a mask (column-major runs, starting with background)."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def _rle_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    def with_segmentation(make: Callable[[rf.RegionPhoto, np.random.Generator], dict]) -> Callable:
        def build(names, photos, rng):
            ann = _annotation(1, 1, photos[0].polygons[0], segmentation=make(photos[0], rng))
            return json.dumps(_coco_doc([(1, names[0])], [ann]))

        return build

    def short(p, rng):  # counts summing short of h*w: pycocotools would read past them
        runs = _runs(p.mask)
        return {"size": [H, W], "counts": runs[:-1] + [max(0, runs[-1] - int(rng.integers(1, 50)))]}

    def long(p, rng):
        return {"size": [H, W], "counts": _runs(p.mask) + [int(rng.integers(1, 10**6))]}

    def garbage(p, rng):
        return {"size": [H, W], "counts": "".join(chr(c) for c in rng.integers(48, 112, int(rng.integers(3, 12))))}

    def truncated(p, rng):
        return {"size": [H, W], "counts": _rle_of(p)["counts"] + "o"}  # 'o' continues a count that never ends

    def huge(p, rng):  # 30000 x 30000 with consistent counts: decoded, it is 0.9 GB
        side = int(rng.integers(29_000, 31_000))
        return {"size": [side, side], "counts": [side * side - 7, 7]}

    cases = (
        ("coco_rle_compressed", lambda p, rng: _rle_of(p), KEPT),
        ("coco_rle_uncompressed", lambda p, rng: {"size": [H, W], "counts": _runs(p.mask)}, KEPT),
        ("coco_rle_short", short, "malformed_coco"),
        ("coco_rle_long", long, "malformed_coco"),
        ("coco_rle_garbage", garbage, "malformed_coco"),
        ("coco_rle_truncated", truncated, "malformed_coco"),
        ("coco_rle_huge", huge, "mask_size_mismatch"),
    )
    for kind, make, outcome in cases:
        rows = (USED, 0) if outcome == KEPT else (outcome, 1)
        _coco_case(c, rng, kind, tag, with_segmentation(make), [outcome], rows)
    _rle_on_undeclared_size(c, rng, tag)


def _rle_on_undeclared_size(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """An image entry without width/height and an RLE of another size than the photo: refused when
    the photo's own size is read, before anything is decoded."""

    def build(names, photos, rng):
        side = int(rng.integers(20_000, 30_000))
        seg = {"size": [side, side], "counts": [side * side - 3, 3]}
        doc = _coco_doc([(1, names[0])], [_annotation(1, 1, photos[0].polygons[0], segmentation=seg)])
        del doc["images"][0]["width"], doc["images"][0]["height"]
        return json.dumps(doc)

    _coco_case(c, rng, "coco_rle_undeclared_size", tag, build, ["mask_size_mismatch"], ("mask_size_mismatch", 1))


def _id_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    def duplicate_image_id(names, photos, rng):
        same = int(rng.integers(1, 1000))
        anns = [_annotation(1, same, photos[0].polygons[0]), _annotation(2, same + 1, photos[2].polygons[0])]
        return json.dumps(_coco_doc([(same, names[0]), (same, names[1]), (same + 1, names[2])], anns))

    lost = int(rng.integers(2, 5))

    def orphans(names, photos, rng):
        anns = [_annotation(1, 1, photos[0].polygons[0])]
        anns += [_annotation(10 + i, 1000 + i, photos[0].polygons[0]) for i in range(lost)]
        return json.dumps(_coco_doc([(1, names[0])], anns))

    def duplicate_category(names, photos, rng):
        cats = [{"id": 1, "name": "rust"}, {"id": 2, "name": "rust"}, {"id": 1, "name": "background"}]
        anns = [_annotation(1, 1, photos[0].polygons[0]), _annotation(2, 2, photos[1].polygons[0], category_id=2)]
        return json.dumps(_coco_doc([(1, names[0]), (2, names[1])], anns, cats))

    def duplicate_file_name(names, photos, rng):  # two entries name one photo: whose annotations hold?
        anns = [_annotation(1, 2, photos[0].polygons[0])]
        return json.dumps(_coco_doc([(1, names[0]), (2, names[0]), (3, names[1])], anns))

    def bool_category(names, photos, rng):
        return json.dumps(_coco_doc([(1, names[0])], [_annotation(1, 1, photos[0].polygons[0], category_id=True)]))

    _coco_case(
        c, rng, "coco_duplicate_image_id", tag, duplicate_image_id,
        ["duplicate_image_id", "duplicate_image_id", KEPT], ("duplicate_image_id", 2),
    )  # fmt: skip
    _coco_case(c, rng, "coco_orphans", tag, orphans, [KEPT], ("unknown_image_id", lost))
    _coco_case(
        c, rng, "coco_duplicate_category", tag, duplicate_category,
        ["duplicate_category_id", KEPT], ("duplicate_category_id", 1),
    )  # fmt: skip
    _coco_case(
        c, rng, "coco_duplicate_file_name", tag, duplicate_file_name,
        ["duplicate_file_name", KEPT], ("duplicate_file_name", 2),
    )  # fmt: skip
    _coco_case(c, rng, "coco_bool_category", tag, bool_category, ["unknown_label"], ("unknown_label", 1))


def _claim_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """Two LabelMe JSONs claim one image: the one named after it wins, wherever the other sorts."""
    unit, stem = c.root / "labelme_claims", f"claimed_{tag}"
    photo = _photo(c, rng, f"labelme_claims/images/{stem}.png")
    _write(unit / "labelme" / f"{stem}.json", rf.labelme_json(f"../images/{stem}.png", W, H, photo.polygons))
    other = rf.region_photo(rng, W, H, 2)  # another outline: its mask would be wrong for this photo
    _write(unit / "aaa" / f"aaa_{tag}.json", rf.labelme_json(f"../images/{stem}.png", W, H, other.polygons))
    c.add("labelme_claimed", f"labelme_claims/images/{stem}.png", KEPT)
    c.add("labelme_claimed_own_json", f"labelme_claims/labelme/{stem}.json", USED)
    c.add("labelme_claimed_other_json", f"labelme_claims/aaa/aaa_{tag}.json", "duplicate_annotation")


def write_large_coco(root: str | Path, images: int = 400, seed: int = 0, polygons: int = 6) -> Path:
    """One COCO export of ``images`` distinct tiny photos with ``polygons`` annotations each (30-point
    polygons), as CVAT writes it (``annotations/instances_default.json`` beside ``images/``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    entries, anns = [], []
    for i in range(images):
        photo = rf.region_photo(rng, W, H, 1)
        name = f"p{i:05d}.png"
        _write(root / "images" / name, photo.png())
        entries.append((i + 1, name))
        for _ in range(polygons):
            outline = tuple(float(round(v, 2)) for v in rng.uniform(0, [W, H] * 15, 30))
            anns.append(_annotation(len(anns) + 1, i + 1, outline))
    _write(root / "annotations" / "instances_default.json", json.dumps(_coco_doc(entries, anns)))
    return root


__all__ = ["Case", "Corpus", "generate_corpus", "write_large_coco", "KEPT", "USED", "IGNORED"]
