"""Synthetic survey photos with rust patches at exactly known boxes, in every input layout.

Tests and the demo use this instead of committed files. Backgrounds are steel- or paint-like;
rust patches are irregular, textured, orange-to-dark-brown blobs whose box is the tight bounding
box of the pixels drawn. Clean negatives include red and brown painted surfaces (hard negatives:
rust is not just "a reddish colour"). ``write_bad_file`` produces the broken inputs tests need.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from corrosion.core.annotations import Box

BACKGROUNDS = ("steel", "blue_paint", "green_paint", "grey_paint", "white_paint")
HARD_NEGATIVES = ("red_paint", "brown_paint", "copper")
_PAINT = {
    "blue_paint": (45, 75, 135),
    "green_paint": (55, 115, 70),
    "grey_paint": (150, 152, 155),
    "white_paint": (222, 222, 216),
    "red_paint": (165, 28, 32),
    "brown_paint": (96, 62, 50),
    "copper": (184, 115, 51),
}
_RUST_DARK = np.array([85, 40, 18], np.float32)
_RUST_MID = np.array([150, 72, 28], np.float32)
_RUST_LIGHT = np.array([200, 112, 45], np.float32)

BAD_KINDS = (
    "truncated",  # a JPEG cut in half
    "empty",  # zero bytes
    "not_image",  # text with a .jpg name
    "huge",  # a PNG header claiming 30000 x 30000 pixels (decompression bomb)
    "malformed_xml",  # VOC XML that does not parse
    "xml_bomb",  # VOC XML with entity expansion ("billion laughs")
    "xml_external_entity",  # VOC XML referencing an external entity
    "missing_image",  # VOC XML whose <filename> does not exist
    "path_escape",  # VOC XML whose <filename> points outside the input root
    "unknown_label",  # VOC XML with a box label the config does not know
    "inverted_box",  # VOC XML with xmax < xmin
    "box_outside",  # VOC XML with a box reaching past the image edge (clipped, kept)
)


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image: where it is (relative to the survey root) and the truth about it."""

    path: str
    width: int
    height: int
    image_class: str  # "rust" | "no_rust"
    boxes: tuple[Box, ...]  # in oriented pixel coordinates
    background: str
    orientation: int = 1


@dataclass(frozen=True)
class BadFile:
    kind: str
    path: str  # relative to the survey root; the annotation file for XML kinds
    image_path: str | None = None  # the image an annotation refers to, when one was written


@dataclass
class Survey:
    root: Path
    layout: str
    images: list[SyntheticImage] = field(default_factory=list)
    bad_files: list[BadFile] = field(default_factory=list)

    @property
    def rust_images(self) -> list[SyntheticImage]:
        return [i for i in self.images if i.image_class == "rust"]

    def truth_json(self) -> str:
        """Ground truth as JSON, for scripts that check a pipeline's output against it."""
        return json.dumps(
            [
                {
                    "path": i.path,
                    "class": i.image_class,
                    "width": i.width,
                    "height": i.height,
                    "boxes": [[b.xmin, b.ymin, b.xmax, b.ymax] for b in i.boxes],
                }
                for i in self.images
            ],
            indent=1,
        )


# ---------------------------------------------------------------- rendering


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] at (height, width): random grid upsampled bilinearly."""
    gw, gh = max(2, width // cell + 2), max(2, height // cell + 2)
    grid = rng.random((gh, gw)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def render_background(rng: np.random.Generator, width: int, height: int, kind: str) -> np.ndarray:
    """Float32 (H, W, 3) steel or paint surface with shading and grain."""
    shade = _smooth_noise(rng, width, height, max(8, min(width, height) // 3))
    if kind == "steel":
        base = np.array([128, 132, 138], np.float32) + rng.uniform(-20, 25)
        # brushed streaks: noise that varies across rows only
        streak_rows = _smooth_noise(rng, 1, height, 3)[:, :1]
        img = base[None, None, :] + 30 * (shade[..., None] - 0.5) + 25 * (streak_rows[..., None] - 0.5)
    else:
        base = np.array(_PAINT[kind], np.float32) * rng.uniform(0.85, 1.1)
        img = base[None, None, :] * (0.8 + 0.35 * shade[..., None])
    grain = rng.normal(0, 4.0, (height, width, 1)).astype(np.float32)
    return img + grain


def _blob_mask(rng: np.random.Generator, bw: int, bh: int) -> np.ndarray:
    """Irregular boolean blob filling most of a (bh, bw) box."""
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    cx, cy = (bw - 1) / 2, (bh - 1) / 2
    dist = np.sqrt(((xx - cx) / max(cx, 0.5)) ** 2 + ((yy - cy) / max(cy, 0.5)) ** 2)
    wobble = _smooth_noise(rng, bw, bh, max(3, min(bw, bh) // 4))
    mask = dist + 0.6 * (wobble - 0.5) < 0.92
    if not mask.any():
        mask[int(cy), int(cx)] = True
    return mask


def draw_rust_patch(
    rng: np.random.Generator, img: np.ndarray, x0: int, y0: int, bw: int, bh: int, drawn: np.ndarray | None = None
) -> Box:
    """Paint one textured rust blob into ``img`` in place (and its pixels into ``drawn``, a boolean
    mask of the image, when given); returns the tight box of its pixels."""
    mask = _blob_mask(rng, bw, bh)
    if drawn is not None:
        drawn[y0 : y0 + bh, x0 : x0 + bw] |= mask
    tone = _smooth_noise(rng, bw, bh, max(2, min(bw, bh) // 6))[..., None]
    fine = rng.random((bh, bw, 1)).astype(np.float32)
    colour = np.where(
        tone < 0.5,
        _RUST_DARK + (_RUST_MID - _RUST_DARK) * tone * 2,
        _RUST_MID + (_RUST_LIGHT - _RUST_MID) * (tone - 0.5) * 2,
    )
    colour = colour * (0.85 + 0.3 * fine)
    pits = rng.random((bh, bw)) < 0.03
    colour[pits] *= 0.5
    region = img[y0 : y0 + bh, x0 : x0 + bw]
    region[mask] = colour[mask]
    ys, xs = np.nonzero(mask)
    return Box(float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1))


def render(
    rng: np.random.Generator,
    width: int,
    height: int,
    n_patches: int,
    background: str,
    patch_scale: tuple[float, float] = (0.08, 0.35),
    box_label: str = "rust",
) -> tuple[np.ndarray, tuple[Box, ...]]:
    """An RGB uint8 image and the boxes of the rust patches drawn on it (non-overlapping)."""
    pixels, boxes, _ = render_with_mask(rng, width, height, n_patches, background, patch_scale, box_label)
    return pixels, boxes


def render_with_mask(
    rng: np.random.Generator,
    width: int,
    height: int,
    n_patches: int,
    background: str,
    patch_scale: tuple[float, float] = (0.08, 0.35),
    box_label: str = "rust",
) -> tuple[np.ndarray, tuple[Box, ...], np.ndarray]:
    """``render``'s image and boxes, and the boolean (H, W) mask of every rust pixel drawn."""
    img = render_background(rng, width, height, background)
    drawn = np.zeros((height, width), bool)
    boxes: list[Box] = []
    short = min(width, height)
    for _ in range(n_patches):
        for _attempt in range(30):
            bw = max(6, int(short * rng.uniform(*patch_scale) * rng.uniform(0.7, 1.4)))
            bh = max(6, int(short * rng.uniform(*patch_scale) * rng.uniform(0.7, 1.4)))
            bw, bh = min(bw, width - 2), min(bh, height - 2)
            x0 = int(rng.integers(1, width - bw))
            y0 = int(rng.integers(1, height - bh))
            if all(
                x0 >= b.xmax + 2 or x0 + bw <= b.xmin - 2 or y0 >= b.ymax + 2 or y0 + bh <= b.ymin - 2 for b in boxes
            ):
                box = draw_rust_patch(rng, img, x0, y0, bw, bh, drawn)
                boxes.append(Box(box.xmin, box.ymin, box.xmax, box.ymax, box_label))
                break
    return np.clip(img, 0, 255).astype(np.uint8), tuple(boxes), drawn


def rust_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels of rust colour (orange-brown hue, saturated, neither black nor white).

    Used by tests to check that boxes cover the rust the generator drew.
    """
    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), dtype=np.float32)
    hue = hsv[..., 0] * 360 / 255
    sat = hsv[..., 1] / 255
    val = hsv[..., 2] / 255
    return (hue >= 12) & (hue <= 40) & (sat >= 0.45) & (val >= 0.15) & (val <= 0.85)


# ---------------------------------------------------------------- encoding


def encode_image(pixels: np.ndarray, fmt: str = "JPEG", orientation: int = 1, quality: int = 92) -> bytes:
    """Encode oriented pixels; with an EXIF orientation, store the raw (un-rotated) pixels."""
    img = Image.fromarray(pixels)
    kwargs: dict = {"quality": quality} if fmt == "JPEG" else {}
    if orientation != 1:
        img = img.transpose(_RAW_FROM_ORIENTED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


# exif_transpose applies ROTATE_270 for 6, ROTATE_90 for 8, ROTATE_180 for 3; these undo it.
_RAW_FROM_ORIENTED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def raw_boxes(boxes: tuple[Box, ...], orientation: int, width: int, height: int) -> tuple[Box, ...]:
    """Boxes on the oriented image (width x height) mapped to raw stored pixels, as labelImg draws them."""
    out = []
    for b in boxes:
        if orientation == 1:
            out.append(b)
            continue
        if orientation == 3:
            x0, y0, x1, y1 = width - b.xmax, height - b.ymax, width - b.xmin, height - b.ymin
        elif orientation == 6:  # raw (x, y) = (y', W' - x')
            x0, y0, x1, y1 = b.ymin, width - b.xmax, b.ymax, width - b.xmin
        elif orientation == 8:  # raw (x, y) = (H' - y', x')
            x0, y0, x1, y1 = height - b.ymax, b.xmin, height - b.ymin, b.xmax
        else:
            raise ValueError(f"orientation {orientation} not supported by the generator")
        out.append(Box(x0, y0, x1, y1, b.label))
    return tuple(out)


def voc_xml(filename: str, width: int, height: int, boxes: tuple[Box, ...], folder: str = "images") -> str:
    """Pascal VOC XML as labelImg writes it, with the annotator's absolute path from another machine."""
    objects = "".join(
        f"\t<object>\n\t\t<name>{b.label}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{int(round(b.xmin))}</xmin>\n"
        f"\t\t\t<ymin>{int(round(b.ymin))}</ymin>\n\t\t\t<xmax>{int(round(b.xmax))}</xmax>\n"
        f"\t\t\t<ymax>{int(round(b.ymax))}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for b in boxes
    )
    return (
        f"<annotation>\n\t<folder>{folder}</folder>\n\t<filename>{filename}</filename>\n"
        f"\t<path>C:\\Users\\annotator\\Desktop\\{folder}\\{filename}</path>\n"
        f"\t<source>\n\t\t<database>Unknown</database>\n\t</source>\n"
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
        f"\t<segmented>0</segmented>\n{objects}</annotation>\n"
    )


def yolo_txt(boxes: tuple[Box, ...], width: int, height: int, class_id: int = 0) -> str:
    lines = []
    for b in boxes:
        cx, cy = (b.xmin + b.xmax) / 2 / width, (b.ymin + b.ymax) / 2 / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {b.width / width:.6f} {b.height / height:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims a huge size: decoding it would need width*height*3 bytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- surveys


def _sizes(size: tuple[int, int] | list[tuple[int, int]], n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if isinstance(size, tuple):
        return [size] * n
    return [size[int(rng.integers(len(size)))] for _ in range(n)]


def generate_images(
    n_rust: int,
    n_clean: int,
    size: tuple[int, int] | list[tuple[int, int]] = (320, 240),
    seed: int = 0,
    hard_negative_fraction: float = 0.4,
    max_patches: int = 3,
    patch_scale: tuple[float, float] = (0.08, 0.35),
    box_label: str = "rust",
) -> list[tuple[np.ndarray, SyntheticImage]]:
    """Render images in memory: (pixels, truth) pairs with names ``rust_0001`` / ``clean_0001``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (w, h) in enumerate(_sizes(size, n_rust, rng)):
        bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        pixels, boxes = render(rng, w, h, int(rng.integers(1, max_patches + 1)), bg, patch_scale, box_label)
        out.append((pixels, SyntheticImage(f"rust_{i:04d}.jpg", w, h, "rust", boxes, bg)))
    for i, (w, h) in enumerate(_sizes(size, n_clean, rng)):
        pool = HARD_NEGATIVES if rng.random() < hard_negative_fraction else BACKGROUNDS
        bg = pool[int(rng.integers(len(pool)))]
        pixels, _ = render(rng, w, h, 0, bg)
        out.append((pixels, SyntheticImage(f"clean_{i:04d}.jpg", w, h, "no_rust", (), bg)))
    return out


def generate_survey(
    root: str | Path,
    layout: str = "voc",
    n_rust: int = 6,
    n_clean: int = 4,
    size: tuple[int, int] | list[tuple[int, int]] = (320, 240),
    seed: int = 0,
    hard_negative_fraction: float = 0.4,
    max_patches: int = 3,
    patch_scale: tuple[float, float] = (0.08, 0.35),
    box_label: str = "rust",
    class_folders: tuple[str, str] = ("rust", "norust"),
    split: str | None = None,
    orientations: tuple[int, ...] = (1,),
    bad_files: tuple[str, ...] = (),
) -> Survey:
    """Write a labelled survey in one layout and return its ground truth.

    Layouts: ``voc`` (labelImg XML beside each JPEG, empty XML for negatives), ``yolo`` (Roboflow
    style ``{split}/images`` + ``{split}/labels`` + ``data.yaml`` with paths that do not exist here),
    ``folders`` (``rust/`` and ``norust/`` class folders) and ``flat`` (images only, a survey night).
    ``orientations`` cycles EXIF orientations over the images (pixels stored raw, boxes annotated raw).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    survey = Survey(root=root, layout=layout)
    rendered = generate_images(n_rust, n_clean, size, seed, hard_negative_fraction, max_patches, patch_scale, box_label)
    for index, (pixels, truth) in enumerate(rendered):
        orientation = orientations[index % len(orientations)]
        rel = _place(layout, truth, class_folders, split)
        data = encode_image(pixels, "JPEG", orientation)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        raw_w, raw_h = (truth.height, truth.width) if orientation in (6, 8) else (truth.width, truth.height)
        boxes_raw = raw_boxes(truth.boxes, orientation, truth.width, truth.height)
        if layout == "voc":
            (root / rel).with_suffix(".xml").write_text(voc_xml(Path(rel).name, raw_w, raw_h, boxes_raw))
        elif layout == "yolo":
            label = root / rel.replace("/images/", "/labels/")
            label = label.with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(yolo_txt(boxes_raw, raw_w, raw_h))
        survey.images.append(
            SyntheticImage(
                rel, truth.width, truth.height, truth.image_class, truth.boxes, truth.background, orientation
            )
        )
    if layout == "yolo":
        _write_data_yaml(root, box_label)
    rng = np.random.default_rng(seed + 7919)
    for i, kind in enumerate(bad_files):
        survey.bad_files.append(write_bad_file(root, kind, f"bad_{i:02d}_{kind}", layout, rng, box_label))
    return survey


def _place(layout: str, truth: SyntheticImage, class_folders: tuple[str, str], split: str | None) -> str:
    prefix = f"{split}/" if split else ""
    if layout == "voc" or layout == "flat":
        return f"{prefix}{truth.path}"
    if layout == "yolo":
        return f"{split or 'train'}/images/{truth.path}"
    if layout == "folders":
        folder = class_folders[0] if truth.image_class == "rust" else class_folders[1]
        return f"{prefix}{folder}/{truth.path}"
    raise ValueError(f"unknown layout {layout!r}; use voc, yolo, folders or flat")


def _write_data_yaml(root: Path, box_label: str) -> None:
    splits = sorted(p.name for p in root.iterdir() if (p / "images").is_dir())
    lines = [f"{s if s != 'valid' else 'val'}: C:\\Users\\annotator\\dataset\\{s}\\images" for s in splits]
    lines += ["", "nc: 1", f"names: ['{box_label}']", ""]
    (root / "data.yaml").write_text("\n".join(lines))


def write_bad_file(
    root: Path,
    kind: str,
    stem: str,
    layout: str = "voc",
    rng: np.random.Generator | None = None,
    box_label: str = "rust",
) -> BadFile:
    """Write one broken input of ``kind`` (see BAD_KINDS) under ``root``; images go where ``layout`` puts them."""
    rng = rng or np.random.default_rng(0)
    image_dir = {"folders": "rust/", "yolo": "train/images/"}.get(layout, "")
    pixels, boxes = render(rng, 160, 120, 1, "steel", box_label=box_label)
    good_jpeg = encode_image(pixels)

    def write(rel: str, data: bytes | str) -> str:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return rel

    if kind in _BROKEN_IMAGES:
        ext, data = _broken_image(kind, good_jpeg)
        return BadFile(kind, write(f"{image_dir}{stem}{ext}", data))
    xml, with_image = _bad_annotation(kind, stem, boxes, box_label)
    if not with_image:
        return BadFile(kind, write(f"{stem}.xml", xml))
    img = write(f"{stem}.jpg", good_jpeg)
    return BadFile(kind, write(f"{stem}.xml", xml), img)


_BROKEN_IMAGES = ("truncated", "empty", "not_image", "huge")


def _broken_image(kind: str, good_jpeg: bytes) -> tuple[str, bytes]:
    """(extension, bytes) of a broken image file."""
    if kind == "truncated":
        return ".jpg", good_jpeg[: len(good_jpeg) // 2]
    if kind == "empty":
        return ".jpg", b""
    if kind == "not_image":
        return ".jpg", b"this is a text file, not a photo\n"
    return ".png", bomb_png()


def _bad_annotation(kind: str, stem: str, boxes: tuple[Box, ...], box_label: str) -> tuple[str, bool]:
    """(XML text, whether a good image goes beside it) of a broken or hostile annotation."""
    if kind == "malformed_xml":
        return "<annotation><filename>" + stem + ".jpg</filename><object>", True
    if kind == "xml_bomb":
        lol = '<!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
        )
        return lol + f"]>\n<annotation><filename>{stem}.jpg</filename><name>&lol9;</name></annotation>\n", True
    if kind == "xml_external_entity":
        text = (
            '<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            f"<annotation><filename>{stem}.jpg</filename><folder>&xxe;</folder></annotation>\n"
        )
        return text, True
    if kind == "missing_image":
        return voc_xml(f"{stem}.jpg", 160, 120, boxes), False
    if kind == "path_escape":
        return voc_xml("../../../../etc/hostname", 160, 120, boxes), False
    odd = {
        "unknown_label": tuple(Box(b.xmin, b.ymin, b.xmax, b.ymax, "scratch") for b in boxes),
        "inverted_box": (Box(100, 20, 40, 80, box_label),),
        "box_outside": (Box(120, 60, 200, 150, box_label),),
    }
    if kind in odd:
        return voc_xml(f"{stem}.jpg", 160, 120, odd[kind]), True
    raise ValueError(f"unknown bad-file kind {kind!r}; known: {BAD_KINDS}")
