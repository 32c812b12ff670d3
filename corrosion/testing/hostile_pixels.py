"""Hostile masks and pixels, the second round: files whose headers lie about their pixels, or whose
pixels cost far more than their size on disk, with what each tool must make of them.

``generate_corpus(root, seed)`` writes one labelled tree that is also a survey, in the style of
``corrosion.testing.hostile``: a ``regions/`` unit (``images/`` with ``masks/`` beside it) for the
mask cases, class folders for the pixel cases. Names, sizes, cut points and profile sizes vary
with ``seed``. Each file builder is public, so a test or a measurement can write one case alone.

Every case names its expected outcome:
* ``dataset`` (``build_dataset`` and ``training.evaluate``): for an image ``KEPT`` or its reject
  reason; for a mask file ``USED`` (read for its image, no row of its own) or the reason of its own
  reject row;
* ``inference`` (batch inference, with or without a detector or rust-region model): ``SCORED`` or
  the reason of its error row.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from corrosion.testing import synthetic

KEPT, USED, SCORED = "kept", "used", "scored"


@dataclass(frozen=True)
class Case:
    """One hostile input: ``path`` relative to the corpus root, and what each tool must make of it."""

    kind: str
    path: str
    dataset: str
    inference: str

    @property
    def is_mask(self) -> bool:
        return "/masks/" in f"/{self.path}"


@dataclass
class Corpus:
    root: Path
    cases: list[Case] = field(default_factory=list)

    def add(self, kind: str, path: str, dataset: str, inference: str) -> None:
        self.cases.append(Case(kind, path, dataset, inference))


# ---------------------------------------------------------------- PNG files written without their pixels


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _deflated(data: bytes) -> bytes:
    """Raw deflate ending on a byte boundary, referring only to itself: copies may follow one another."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)


def flat_png(width: int, height: int, pixel: bytes = b"\0", colour_type: int = 0) -> bytes:
    """A valid 8-bit PNG of one colour (``pixel``: 1 byte grey, 3 bytes RGB), written without holding
    its pixels: identical rows deflate once and the block is repeated, so a 40000 x 40000 mask is a
    1.6 MB file that decodes to 1.6 GB, and a 20,000,000 x 1 strip takes a second to write."""
    row = b"\0" + pixel * width  # filter type 0, then the row
    per = max(1, min(height, (4 << 20) // len(row)))
    full, rest = divmod(height, per)
    block, adler = row * per, 1
    for _ in range(full):
        adler = zlib.adler32(block, adler)
    if rest:
        adler = zlib.adler32(row * rest, adler)
    body = _deflated(block) * full + (_deflated(row * rest) if rest else b"")
    stream = b"\x78\xda" + body + b"\x03\x00" + struct.pack(">I", adler)  # \x03\x00: the empty final block
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def strip_png(length: int = 20_000_000, grey: int = 120) -> bytes:
    """A length x 1 RGB strip: 20 MP (within the pixel limit) in about 60 KB."""
    return flat_png(length, 1, bytes([grey]) * 3, colour_type=2)


def png_with_profile(pixels: np.ndarray, profile: bytes) -> bytes:
    """A valid PNG carrying ``profile`` as its ICC profile (iCCP chunk)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", icc_profile=profile)
    return out.getvalue()


def mask_png(mask: np.ndarray) -> bytes:
    """A 0/255 grey mask PNG, as the ballast-tanks masks are."""
    out = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(out, format="PNG")
    return out.getvalue()


def lossy_mask_jpeg(mask: np.ndarray, quality: int = 90) -> bytes:
    """The same mask saved as JPEG: ringing around every edge turns background pixels non-zero."""
    out = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(out, format="JPEG", quality=quality)
    return out.getvalue()


# ---------------------------------------------------------------- JPEGs whose headers lie about their scan


def photo(rng: np.random.Generator, width: int = 160, height: int = 120, **save: object) -> bytes:
    """A small rusty steel photo as JPEG bytes (``save``: Pillow's JPEG options)."""
    pixels, _ = synthetic.render(rng, width, height, 1, "steel")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90, **save)
    return out.getvalue()


def _segment(data: bytes, marker: int) -> int:
    """Offset of the first marker segment ``marker`` (0xC0 = SOF0, 0xC4 = DHT) before the scan."""
    i = 2
    while data[i + 1] != marker:
        if data[i + 1] == 0xDA:
            raise ValueError(f"no marker 0xFF{marker:02X} before the scan")
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return i


def with_declared_size(data: bytes, width: int, height: int) -> bytes:
    """A baseline JPEG whose frame header (SOF0) declares another size than its scan holds."""
    i = _segment(data, 0xC0)
    return data[: i + 5] + struct.pack(">HH", height, width) + data[i + 9 :]


def with_frame_marker(data: bytes, marker: int = 0xC9) -> bytes:
    """The frame header's marker replaced: SOF9 (arithmetic coding) over the file's Huffman scan."""
    i = _segment(data, 0xC0)
    return data[: i + 1] + bytes([marker]) + data[i + 2 :]


def without_huffman_tables(data: bytes) -> bytes:
    """Every DHT segment removed: with SOF9 the header reads as a genuine arithmetic-coded JPEG."""
    while True:
        try:
            i = _segment(data, 0xC4)
        except ValueError:
            return data
        data = data[:i] + data[i + 2 + int.from_bytes(data[i + 2 : i + 4], "big") :]


def cut_scan(data: bytes, fraction: float) -> bytes:
    """The scan cut at ``fraction`` of its length with an end-of-image marker appended: libjpeg then
    fills the rest with grey and only warns."""
    start = data.index(b"\xff\xda")
    end = start + int((len(data) - 2 - start) * fraction)
    return data[:end] + b"\xff\xd9"


# ---------------------------------------------------------------- the corpus


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def generate_corpus(root: str | Path, seed: int = 0) -> Corpus:
    """Write the corpus under ``root`` (which must not exist yet) and return its cases."""
    root = Path(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tag = f"{seed}_{rng.integers(1_000_000):06d}"
    corpus = Corpus(root)
    _mask_cases(corpus, rng, tag)
    _jpeg_cases(corpus, rng, tag)
    _png_cases(corpus, rng, tag)
    return corpus


def _mask_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """images/ beside masks/: a good pair, a mask bomb, a JPEG mask, two masks of one image."""
    unit = c.root / "regions"
    for kind in ("mask_good", "mask_bomb", "mask_jpeg", "mask_twins"):
        name = f"{kind}_{tag}"
        pixels, _, drawn = synthetic.render_with_mask(rng, 96, 72, 1, "steel")
        _write(unit / "images" / f"{name}.jpg", synthetic.encode_image(pixels))
        image_outcome = {"mask_bomb": "mask_size_mismatch", "mask_jpeg": "lossy_mask"}.get(kind, KEPT)
        c.add(kind, f"regions/images/{name}.jpg", image_outcome, SCORED)
        if kind == "mask_bomb":  # far larger than its photo, small on disk: refused from the header
            side = int(rng.integers(38_000, 42_000))
            _write(unit / "masks" / f"{name}.png", flat_png(side, side))
            c.add(kind + "_file", f"regions/masks/{name}.png", USED, "too_large")
        elif kind == "mask_jpeg":
            _write(unit / "masks" / f"{name}.jpg", lossy_mask_jpeg(drawn))
            c.add(kind + "_file", f"regions/masks/{name}.jpg", USED, SCORED)
        else:
            _write(unit / "masks" / f"{name}.png", mask_png(drawn))
            c.add(kind + "_file", f"regions/masks/{name}.png", USED, SCORED)
        if kind == "mask_twins":  # a second mask of the same image: refused, never taken for an image
            _write(unit / "masks" / f"{name}.PNG", mask_png(np.zeros_like(drawn)))
            c.add(kind + "_second", f"regions/masks/{name}.PNG", "duplicate_annotation", SCORED)


def _jpeg_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """Headers that disagree with their scan, and well-formed JPEGs of unusual shape that must stay."""
    rust = c.root / "rust"
    good = photo(rng)
    big = photo(rng, 800, 600)  # room for a scan well beyond a shrunk header (by more than 32 KB)
    cases = {
        "sof_inflated": with_declared_size(good, int(rng.integers(6_000, 9_001)), int(rng.integers(6_000, 9_001))),
        "sof_shrunk": with_declared_size(big, 400, 300),
        "sof9_over_huffman": with_frame_marker(good, 0xC9),
        "arithmetic": without_huffman_tables(with_frame_marker(good, 0xC9)),
        "scan_cut": cut_scan(good, float(rng.uniform(0.3, 0.8))),
        "progressive": photo(rng, progressive=True),
        "restart_markers": photo(rng, restart_marker_blocks=int(rng.integers(1, 8))),
        "data_after_end": photo(rng) + rng.integers(0, 256, 2_000, dtype=np.uint8).tobytes(),
    }
    reasons = {"arithmetic": "unsupported_jpeg"}
    for kind, data in cases.items():
        _write(rust / f"{kind}_{tag}.jpg", data)
        outcome = KEPT if kind in ("progressive", "restart_markers", "data_after_end") else "corrupt_image"
        outcome = reasons.get(kind, outcome)
        c.add(kind, f"rust/{kind}_{tag}.jpg", outcome, SCORED if outcome == KEPT else outcome)


def _png_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """A valid PNG with a multi-megabyte ICC profile, one whose profile inflates past the bound, a strip."""
    rust = c.root / "rust"
    pixels, _ = synthetic.render(rng, 96, 72, 1, "steel")
    profile = rng.integers(0, 256, int(rng.integers(6, 11)) << 20, dtype=np.uint8).tobytes()
    _write(rust / f"icc_profile_{tag}.png", png_with_profile(pixels, profile))
    c.add("icc_profile", f"rust/icc_profile_{tag}.png", KEPT, SCORED)
    _write(rust / f"icc_bomb_{tag}.png", png_with_profile(pixels, bytes(65 << 20)))  # 65 MB of zeros, 64 KB on disk
    c.add("icc_bomb", f"rust/icc_bomb_{tag}.png", "too_large", "too_large")
    length = int(rng.integers(15_000_000, 25_000_001))
    _write(rust / f"strip_{tag}.png", strip_png(length))
    c.add("strip", f"rust/strip_{tag}.png", "extreme_aspect_ratio", "extreme_aspect_ratio")


__all__ = ["Case", "Corpus", "generate_corpus", "flat_png", "strip_png", "KEPT", "USED", "SCORED"]
