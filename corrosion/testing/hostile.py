"""A hostile-input corpus: the files a careless or malicious user gives the three tools.

``generate_corpus(root, seed)`` writes one labelled tree that is also a survey: each case is a
file (or link, FIFO, folder) built to crash, hang, exhaust memory, poison the shards or vanish,
with what each tool must make of it. The dataset pipeline and ``training.evaluate`` read the tree
as labelled folders (VOC, YOLO, class folders); batch inference scores ``root/**``. Names and
contents vary with ``seed``, so each seed is a corpus the code was not written against.

Every case names its expected outcome:
* ``dataset``: for an image ``KEPT`` (a record) or its reject reason; for an annotation file
  ``USED`` (read, no reject row) or the reason of its own reject row; ``IGNORED`` for other files;
* ``inference``: ``SCORED`` (a result row) or the reason of its error row.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from corrosion.testing import synthetic

KEPT, USED, IGNORED, SCORED = "kept", "used", "ignored", "scored"

# An annotation file just over the readers' bound (io_utils.MAX_ANNOTATION_BYTES).
OVERSIZED_ANNOTATION_BYTES = 16 * 2**20 + 1024

ALIAS_BOMB = """names: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
"""


@dataclass(frozen=True)
class Case:
    """One hostile input: ``path`` relative to the corpus root (as the OS names it: it may hold
    undecodable bytes as surrogate escapes, or a newline) and what each tool must make of it."""

    kind: str
    path: str
    dataset: str
    inference: str


@dataclass
class Corpus:
    root: Path
    cases: list[Case] = field(default_factory=list)
    outside: list[Path] = field(default_factory=list)  # folders outside root that links point into

    def add(self, kind: str, path: str, dataset: str, inference: str) -> None:
        self.cases.append(Case(kind, path, dataset, inference))


def photo_jpeg(rng: np.random.Generator, rust: bool, size: tuple[int, int] = (96, 72)) -> tuple[bytes, tuple]:
    """A small steel photo as JPEG bytes, with one rust patch or none, and its boxes."""
    pixels, boxes = synthetic.render(rng, size[0], size[1], 1 if rust else 0, "steel")
    return synthetic.encode_image(pixels), boxes


def _grey16(rng: np.random.Generator, size: tuple[int, int] = (80, 60)) -> bytes:
    """A 16-bit greyscale PNG whose values are all above 255 (``convert("RGB")`` would make it white)."""
    base = rng.integers(2_000, 60_000)
    ramp = np.linspace(0, 5_000, size[0] * size[1]).reshape(size[1], size[0])
    noise = rng.integers(0, 500, (size[1], size[0]))
    arr = np.clip(base + ramp + noise, 256, 65_535).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


def _tiff(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="TIFF", compression="tiff_deflate")
    return out.getvalue()


def _voc(filename: str, size: str = "<width>96</width><height>72</height>", box: str | None = None) -> str:
    obj = f"<object><name>rust</name><bndbox>{box}</bndbox></object>" if box else ""
    return f"<annotation><filename>{filename}</filename><size>{size}<depth>3</depth></size>{obj}</annotation>"


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def generate_corpus(root: str | Path, seed: int = 0) -> Corpus:
    """Write the corpus under ``root`` (which must not exist yet) and return its cases."""
    root = Path(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tag = f"{seed}_{rng.integers(1_000_000):06d}"
    corpus = Corpus(root)
    _voc_cases(corpus, rng, tag)
    _yolo_cases(corpus, rng, tag)
    _class_folder_cases(corpus, rng, tag)
    _link_cases(corpus, rng, tag)
    return corpus


def _voc_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    voc = c.root / "voc"
    box = "<xmin>10</xmin><ymin>10</ymin><xmax>40</xmax><ymax>40</ymax>"
    for kind, size, bbox, reason in (
        ("voc_good", "<width>96</width><height>72</height>", box, KEPT),
        ("voc_size_nan", "<width>nan</width><height>72</height>", box, "malformed_xml"),
        ("voc_size_overflow", "<width>1e999</width><height>72</height>", box, "malformed_xml"),
        ("voc_box_nan", "<width>96</width><height>72</height>", box.replace(">10<", ">nan<", 1), "malformed_xml"),
        ("voc_box_inf", "<width>96</width><height>72</height>", box.replace(">40<", ">inf<", 1), "malformed_xml"),
    ):
        name = f"{kind}_{tag}"
        _write(voc / f"{name}.jpg", photo_jpeg(rng, True)[0])
        _write(voc / f"{name}.xml", _voc(f"{name}.jpg", size, bbox))
        c.add(kind, f"voc/{name}.jpg", reason, SCORED)
        c.add(kind + "_xml", f"voc/{name}.xml", USED if reason == KEPT else reason, "not_an_image")
    name = f"voc_oversized_xml_{tag}"
    _write(voc / f"{name}.jpg", photo_jpeg(rng, True)[0])
    padding = " " * OVERSIZED_ANNOTATION_BYTES
    _write(voc / f"{name}.xml", _voc(f"{name}.jpg", box=box).replace("<size>", f"{padding}<size>"))
    c.add("voc_oversized_xml", f"voc/{name}.jpg", "file_too_large", SCORED)
    c.add("voc_oversized_xml_xml", f"voc/{name}.xml", "file_too_large", "not_an_image")
    name = f"voc_bogus_encoding_{tag}"  # an encoding Python has no codec for
    _write(voc / f"{name}.jpg", photo_jpeg(rng, True)[0])
    _write(voc / f"{name}.xml", '<?xml version="1.0" encoding="x-bogus-42"?>' + _voc(f"{name}.jpg", box=box))
    c.add("voc_bogus_encoding", f"voc/{name}.jpg", "malformed_xml", SCORED)
    c.add("voc_bogus_encoding_xml", f"voc/{name}.xml", "malformed_xml", "not_an_image")
    name = f"voc_bom_{tag}"  # a byte-order mark before the XML declaration
    _write(voc / f"{name}.jpg", photo_jpeg(rng, True)[0])
    _write(voc / f"{name}.xml", b"\xef\xbb\xbf" + ('<?xml version="1.0"?>' + _voc(f"{name}.jpg", box=box)).encode())
    c.add("voc_bom", f"voc/{name}.jpg", KEPT, SCORED)
    c.add("voc_bom_xml", f"voc/{name}.xml", USED, "not_an_image")


def _yolo_unit(c: Corpus, folder: str, data_yaml: str | None, label: str, kind: str, outcome: str, tag: str, rng):
    unit = c.root / folder
    name = f"{kind}_{tag}"
    _write(unit / "images" / f"{name}.jpg", photo_jpeg(rng, True)[0])
    _write(unit / "labels" / f"{name}.txt", label)
    c.add(kind, f"{folder}/images/{name}.jpg", outcome, SCORED)
    label_outcome = USED if outcome == KEPT else outcome
    c.add(kind + "_txt", f"{folder}/labels/{name}.txt", label_outcome, "not_an_image")
    if data_yaml is not None:
        _write(unit / "data.yaml", data_yaml)
        c.add(kind + "_yaml", f"{folder}/data.yaml", USED, "not_an_image")


def _yolo_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    box = "0.5 0.5 0.25 0.25\n"
    # names keyed by id: id 3 is rust (by position it would be id 0, or out of range)
    _yolo_unit(c, "yolo_ids", "names: {3: rust}\n", "3 " + box, "yolo_names_by_id", KEPT, tag, rng)
    _yolo_unit(
        c,
        "yolo_mixed",
        "names: {0: rust, x: corrosion}\n",
        "0 " + box,
        "yolo_mixed_keys",
        "malformed_data_yaml",
        tag,
        rng,
    )
    _yolo_unit(c, "yolo_bomb", ALIAS_BOMB, "0 " + box, "yolo_alias_bomb", "malformed_data_yaml", tag, rng)
    _yolo_unit(c, "yolo_nan", "names: [rust]\n", "0 nan 0.5 0.1 0.1\n", "yolo_nan_box", "malformed_yolo", tag, rng)
    _yolo_unit(c, "yolo_bom", "\ufeffnames: [rust]\n", "\ufeff0 " + box, "yolo_bom", KEPT, tag, rng)
    # images sharing a stem all take labels/<stem>.txt (as in Ultralytics); a second label file with that stem is refused
    unit, name = c.root / "yolo_stems", f"stem_{tag}"
    _write(unit / "data.yaml", "names: [rust]\n")
    c.add("yolo_same_stem_yaml", "yolo_stems/data.yaml", USED, "not_an_image")
    for ext in ("jpg", "JPG", "png"):
        _write(unit / "images" / f"{name}.{ext}", photo_jpeg(rng, True)[0])
        c.add("yolo_same_stem", f"yolo_stems/images/{name}.{ext}", KEPT, SCORED)
    _write(unit / "labels" / f"{name}.txt", "0 " + box)
    c.add("yolo_same_stem_txt", f"yolo_stems/labels/{name}.txt", USED, "not_an_image")
    _write(unit / "labels" / f"{name}.TXT", "0 " + box)
    c.add("yolo_same_stem_second_label", f"yolo_stems/labels/{name}.TXT", "duplicate_annotation", "not_an_image")
    # a folder named data.yaml (with a file in it, so the listing sees it)
    _yolo_unit(c, "yolo_dir", None, "0 " + box, "yolo_data_yaml_folder", "malformed_data_yaml", tag, rng)
    _write(c.root / "yolo_dir" / "data.yaml" / "note.txt", "not a YAML file\n")
    c.add("yolo_data_yaml_folder_note", "yolo_dir/data.yaml/note.txt", IGNORED, "not_an_image")


def _class_folder_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    rust, clean = c.root / "rust", c.root / "norust"

    def image(folder: Path, name: str, data: bytes, kind: str, dataset: str = KEPT, inference: str = SCORED) -> None:
        _write(folder / name, data)
        c.add(kind, f"{folder.name}/{name}", dataset, inference)

    image(rust, f"plain_{tag}.jpg", photo_jpeg(rng, True)[0], "plain")
    image(rust, f"line\nbreak_{tag}.jpg", photo_jpeg(rng, True)[0], "newline_name")
    image(rust, f'quote",comma_{tag}.jpg', photo_jpeg(rng, True)[0], "csv_special_name")
    image(rust, f"back\\slash_{tag}.jpg", photo_jpeg(rng, True)[0], "backslash_name")
    image(rust, f"=HYPERLINK(1)_{tag}.jpg", photo_jpeg(rng, True)[0], "formula_name")
    image(rust, f"wide_{tag}.tif", _tiff(np.full((1, 70_000, 3), 128, np.uint8)), "wider_than_jpeg")
    image(rust, f"grey16_a_{tag}.png", _grey16(rng), "grey16")
    image(rust, f"grey16_b_{tag}.png", _grey16(rng), "grey16")
    image(rust, f"int32_{tag}.tif", _tiff((rng.random((60, 80)) * 3e6).astype(np.int32)), "int32")
    image(clean, f"float_{tag}.tif", _tiff(rng.random((60, 80)).astype(np.float32)), "float32")
    image(clean, f"empty_{tag}.jpg", b"", "empty", "empty_file", "empty_file")
    image(clean, f"text_{tag}.png", b"not a PNG\n", "not_image", "not_an_image", "not_an_image")
    bad = os.fsencode(rust) + f"/caf\xe9_{tag}.jpg".encode("latin-1")  # a Latin-1 name from a Windows zip
    with open(bad, "wb") as handle:
        handle.write(photo_jpeg(rng, True)[0])
    c.add("undecodable_name", os.fsdecode(bad)[len(str(c.root)) + 1 :], "undecodable_name", "undecodable_name")
    fifo = clean / f"fifo_{tag}.jpg"
    os.mkfifo(fifo)
    c.add("fifo", f"norust/{fifo.name}", "not_a_regular_file", "not_a_regular_file")
    dangling = rust / f"dangling_{tag}.jpg"
    os.symlink(c.root.parent / f"gone_{tag}.jpg", dangling)
    c.add("dangling_symlink", f"rust/{dangling.name}", "dangling_symlink", "dangling_symlink")
    brackets = clean / f"site[{tag}]"
    image(brackets, "photo.jpg", photo_jpeg(rng, False)[0], "brackets_in_folder")
    c.cases[-1] = Case("brackets_in_folder", f"norust/{brackets.name}/photo.jpg", KEPT, SCORED)


def _link_cases(c: Corpus, rng: np.random.Generator, tag: str) -> None:
    """Links as surveys hold them: a folder link inside the corpus (``latest -> store``) is followed
    and its photo listed once, under its own folder; a folder or file link out of the corpus is a
    ``link_outside_input`` row naming the link (a link to ``/`` once walked the whole machine), and
    a link back to the root a ``link_loop`` row, in every tool."""
    store = c.root / "norust" / f"store_{tag}"
    _write(store / f"linked_{tag}.jpg", photo_jpeg(rng, False)[0])
    os.symlink(store.name, c.root / "norust" / "linked")  # relative, as `ln -s store_x linked` makes it
    c.add("symlinked_folder", f"norust/{store.name}/linked_{tag}.jpg", KEPT, SCORED)
    outside = c.root.parent / f"{c.root.name}-linked-{tag}"
    _write(outside / f"outside_{tag}.jpg", photo_jpeg(rng, False)[0])
    c.outside.append(outside)
    os.symlink(outside, c.root / "norust" / "mounted")
    c.add("link_outside_folder", "norust/mounted", "link_outside_input", "link_outside_input")
    os.symlink(outside / f"outside_{tag}.jpg", c.root / "rust" / f"outside_{tag}.jpg")
    c.add("link_outside_file", f"rust/outside_{tag}.jpg", "link_outside_input", "link_outside_input")
    os.symlink(c.root, c.root / "norust" / "loop")
    c.add("link_loop", "norust/loop", "link_loop", "link_loop")


__all__ = ["Case", "Corpus", "generate_corpus", "KEPT", "USED", "IGNORED", "SCORED"]


def _ramps(width: int, height: int) -> np.ndarray:
    """Smooth colour ramps with one rust patch: large in pixels, small once compressed."""
    arr = np.empty((height, width, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, width, dtype=np.float32).astype(np.uint8)
    arr[..., 1] = arr[0, ::-1, 0]
    arr[..., 2] = 128
    arr[height * 2 // 5 : height * 2 // 5 + 300, width // 2 : width // 2 + 400] = (150, 72, 28)
    return arr


def write_large_png(path: str | Path, width: int = 10_000, height: int = 10_000) -> Path:
    """A 100 MP PNG that stays small on disk: within ``max_pixels``, so every tool must decode it,
    and within a memory budget."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_ramps(width, height)).save(path, format="PNG", compress_level=6)
    return path


def write_large_jpeg(path: str | Path, width: int = 9_000, height: int = 6_700) -> Path:
    """A 60 MP JPEG (a survey camera's largest), smooth so it encodes fast and small."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    small = Image.fromarray(_ramps(900, 670))
    small.resize((width, height), Image.BILINEAR).save(path, format="JPEG", quality=90)
    return path
