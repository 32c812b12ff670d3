"""Duplicates: identical copies collapse; near-duplicates (dHash + thumbnail check) form groups.

* **Identical**: the sha256 of the decoded, oriented pixels (``pixel_hash``) catches byte-identical
  files and re-saves whose pixels did not change. Copies collapse to one record; the copy with
  boxes wins, and copies labelled both rust and no_rust reject the whole set. A copy from a
  corrections folder (an inspector's reviewed labels, ``build_dataset --corrections``) wins over
  every other copy, whatever they say.
* **Near-duplicate**: the same photo resized or re-encoded. A 64-bit dHash within
  ``max_hamming`` bits finds candidates (bucketed by hash bands: two hashes within *t* bits agree
  exactly on at least one of *t + 1* bands, so only same-bucket pairs are compared), and a second,
  independent measure confirms each pair: the Pearson correlation and mean absolute difference of
  small grey thumbnails. Confirmed pairs are joined with union-find; a group never straddles splits.
* **Derived copies**: files whose names say which photo they were made from (Roboflow's rotated
  and sheared augmentations, ``<origin>_jpg.rf.<hash>.jpg``) join that photo's group.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from corrosion.data.dataset_config import DedupConfig


@dataclass(frozen=True)
class Signature:
    """What the near-duplicate join needs of one unique image (small: no pixels)."""

    key: str  # pixel hash of the unique image
    shas: tuple[str, ...]  # sha256 of every file that collapsed into it
    dhash: int
    thumb: bytes
    image_class: str
    source_splits: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()  # "source:origin name" of derived copies (see origin_of)
    stratum: str = ""  # source / what its labels say / class: the split is stratified on it (see stratum)


LABEL_KINDS = ("regions", "boxes", "label")  # richest first: a rust mask, boxes, the image label only


def stratum(source: str, record) -> str:
    """``source/kind/class`` of a record: validation and test get their share of every one."""
    kind = "regions" if record.mask is not None else "boxes" if record.boxes else "label"
    return f"{source}/{kind}/{record.image_class}"


def origin_of(stem: str, source: str, patterns: Iterable[str]) -> str | None:
    """``source:origin`` when a file's stem says which photo it was derived from (e.g. Roboflow augmentations)."""
    for pattern in patterns:
        match = re.match(pattern, stem)
        if match:
            return f"{source}:{match.group(1)}"
    return None


def pixel_hash(img: Image.Image) -> str:
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    return hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()


def fingerprints(img: Image.Image, hash_size: int = 8, thumb_size: int = 16) -> tuple[str, int, bytes]:
    """(pixel_hash, dhash, thumbnail) of one decoded image, converting it to grey only once."""
    grey = img.convert("L")
    return pixel_hash(img), dhash(grey, hash_size), thumbnail(grey, thumb_size)


def _grey(img: Image.Image, width: int, height: int) -> np.ndarray:
    small = img if img.mode == "L" else img.convert("L")
    if small.width > 8 * width and small.height > 8 * height:  # cheap pre-shrink of big photos
        small = small.reduce(max(1, min(small.width // (4 * width), small.height // (4 * height))))
    return np.asarray(small.resize((width, height), Image.Resampling.BOX), dtype=np.float32)


def dhash(img: Image.Image, size: int = 8) -> int:
    """Difference hash: one bit per horizontally adjacent pair of a (size+1) x size grey thumbnail."""
    grey = _grey(img, size + 1, size)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def thumbnail(img: Image.Image, size: int = 16) -> bytes:
    return np.clip(np.rint(_grey(img, size, size)), 0, 255).astype(np.uint8).tobytes()


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def thumbs_agree(a: bytes, b: bytes, cfg: DedupConfig) -> bool:
    """The confirming measure: thumbnails correlate and differ little on average."""
    x = np.frombuffer(a, np.uint8).astype(np.float32)
    y = np.frombuffer(b, np.uint8).astype(np.float32)
    if x.shape != y.shape:
        return False
    if float(np.mean(np.abs(x - y))) > cfg.max_mean_abs_diff:
        return False
    if x.std() < 2.0 or y.std() < 2.0:  # flat images: correlation is meaningless, the difference decides
        return True
    return float(np.corrcoef(x, y)[0, 1]) >= cfg.min_correlation


def _bands(bits: int, n_bands: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, bits, n_bands + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(n_bands) if edges[i + 1] > edges[i]]


def _as_words(value: int, n_words: int) -> list[int]:
    """An integer hash as 64-bit words, low word first (numpy holds no wider integer)."""
    return [(value >> (64 * w)) & 0xFFFF_FFFF_FFFF_FFFF for w in range(n_words)]


def near_duplicate_pairs(signatures: Sequence[Signature], cfg: DedupConfig) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of confirmed near-duplicates, each once.

    A pair sharing several bands is compared only in the first band both share, so nothing
    remembers the pairs already compared: a set of them grew with the square of the image count
    (~8.6 million tuples, +830 MB, for 10,000 photos). Memory is one band's buckets plus one row of
    a bucket at a time; the pairs and their order are those of comparing every same-bucket pair once."""
    bits = cfg.hash_size * cfg.hash_size
    n_words = (bits + 63) // 64
    words = np.array([_as_words(s.dhash, n_words) for s in signatures], dtype=np.uint64).reshape(-1, n_words)
    bands = _bands(bits, cfg.max_hamming + 1)
    band_masks = np.array([_as_words(((1 << (hi - lo)) - 1) << lo, n_words) for lo, hi in bands], dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for band, (lo, hi) in enumerate(bands):
        mask = (1 << (hi - lo)) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, s in enumerate(signatures):
            buckets[(s.dhash >> lo) & mask].append(i)
        for members in buckets.values():
            if len(members) > 1:
                pairs += _bucket_pairs(np.asarray(members), words, band_masks[:band], signatures, cfg)
    return pairs


def _bucket_pairs(
    members: np.ndarray, words: np.ndarray, earlier: np.ndarray, signatures: Sequence[Signature], cfg: DedupConfig
) -> list[tuple[int, int]]:
    """Confirmed pairs among one bucket's ``members`` (ascending) that share none of the ``earlier``
    bands' masks (those pairs were compared there), one member's row at a time."""
    pairs: list[tuple[int, int]] = []
    hashes = words[members]
    for a in range(len(members) - 1):
        diff = hashes[a + 1 :] ^ hashes[a]
        close = np.flatnonzero(np.bitwise_count(diff).sum(axis=1, dtype=np.int64) <= cfg.max_hamming)
        if len(close) and len(earlier):
            shares_earlier = ((diff[close, None, :] & earlier[None]) == 0).all(axis=2).any(axis=1)
            close = close[~shares_earlier]
        i = int(members[a])
        for j in members[a + 1 + close].tolist():
            if thumbs_agree(signatures[i].thumb, signatures[j].thumb, cfg):
                pairs.append((i, j))
    return pairs


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(signatures: Sequence[Signature], cfg: DedupConfig) -> list[list[Signature]]:
    """Connected components of confirmed near-duplicate pairs (singletons included), sorted by key."""
    uf = UnionFind(len(signatures))
    for a, b in near_duplicate_pairs(signatures, cfg):
        uf.union(a, b)
    first_with_origin: dict[str, int] = {}
    for i, s in enumerate(signatures):
        for origin in s.origins:
            uf.union(first_with_origin.setdefault(origin, i), i)
    groups: dict[int, list[Signature]] = defaultdict(list)
    for i, s in enumerate(signatures):
        groups[uf.find(i)].append(s)
    return sorted((sorted(g, key=lambda s: s.key) for g in groups.values()), key=lambda g: g[0].key)


@dataclass(frozen=True)
class Copy:
    """One file among identical copies, as the representative choice sees it."""

    path: str
    image_class: str
    n_boxes: int
    boxes_known: bool  # False for class-folder images, which say nothing about boxes
    has_mask: bool = False  # the copy's source outlines every rust pixel
    corrected: bool = False  # from a corrections folder: its labels replace the other copies'


def pick_representative(copies: Iterable[Copy]) -> tuple[Copy, str | None]:
    """The copy whose labels the record keeps (a correction wins, then a rust mask, then boxes), and
    a conflict message if the deciding copies' classes disagree (corrections among themselves, else all)."""
    copies = list(copies)
    corrected = [c for c in copies if c.corrected]
    copies = corrected or copies
    classes = sorted({c.image_class for c in copies})
    rep = min(copies, key=lambda c: (not c.has_mask, c.n_boxes == 0, not c.boxes_known, -c.n_boxes, c.path))
    if len(classes) > 1:
        labelled = ", ".join(f"{c.path} = {c.image_class}" for c in sorted(copies, key=lambda c: c.path))
        return rep, f"identical images labelled differently ({labelled})"
    return rep, None
