"""Hostile and careless lists, trees and runs (round 2 of ``corrosion.testing.hostile``).

Each generator writes its inputs under a root and returns them with the outcome each tool must
give, so a test checks every one by name; names and contents vary with ``seed``.

* ``link_tree``: a labelled survey holding a link to ``/``, links out of the tree (a folder, a
  file), a loop and a link inside it: ``link_outside_input`` / ``link_loop`` rows, the rest kept.
* ``input_lists``: one list of the same photos in each encoding and line end a careless export
  gives (UTF-8 with and without BOM, UTF-16 / UTF-32 with BOMs; LF, CRLF, CR), a name ending in a
  space, a line of only spaces, and a BOM-less UTF-16 list, which must be refused.
* ``tiny_pngs`` / ``big_list``: thousands of tiny distinct photos and a long list of them, for the
  memory and lost-input measurements (``python -m corrosion.testing.hostile_runs``).
"""

from __future__ import annotations

import argparse
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from corrosion.testing import synthetic

KEPT, SCORED, REFUSED = "kept", "scored", "refused"


@dataclass(frozen=True)
class Case:
    """One input: ``path`` relative to the root and what the data set and batch inference make of
    it (``KEPT`` / ``SCORED``, or the reason of its reject / error row)."""

    kind: str
    path: str
    dataset: str
    inference: str


@dataclass
class Tree:
    root: Path
    cases: list[Case] = field(default_factory=list)
    outside: Path | None = None  # the folder the escaping links point into


def photo(rng: np.random.Generator, rust: bool = False, size: tuple[int, int] = (64, 48)) -> bytes:
    pixels, _ = synthetic.render(rng, size[0], size[1], 1 if rust else 0, "steel")
    return synthetic.encode_image(pixels)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def link_tree(root: str | Path, seed: int = 0) -> Tree:
    """A survey tree (class folders) under ``root``/survey whose links try to leave it."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    tag = f"{seed}_{rng.integers(1_000_000):06d}"
    survey, outside = root / "survey", root / f"elsewhere_{tag}"
    tree = Tree(survey, outside=outside)
    _write(survey / "rust" / f"real_{tag}.jpg", photo(rng, True))
    tree.cases.append(Case("photo", f"rust/real_{tag}.jpg", KEPT, SCORED))
    _write(outside / f"outside_{tag}.jpg", photo(rng))
    _write(root / f"secret_{tag}.jpg", photo(rng))
    links = {
        f"norust/machine_{tag}": ("/", "link_to_root"),
        f"norust/mounted_{tag}": (outside, "link_to_outside_folder"),
        f"norust/stolen_{tag}.jpg": (root / f"secret_{tag}.jpg", "link_to_outside_file"),
    }
    for name, (target, kind) in links.items():
        (survey / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, survey / name)
        tree.cases.append(Case(kind, name, "link_outside_input", "link_outside_input"))
    os.symlink(survey, survey / "rust" / f"loop_{tag}")
    tree.cases.append(Case("loop", f"rust/loop_{tag}", "link_loop", "link_loop"))
    os.symlink(survey / "rust", survey / f"latest_{tag}")  # inside: followed, its photo listed once
    return tree


@dataclass(frozen=True)
class ListCase:
    """An ``--input_list`` file: ``entries`` the names it must give (relative to its folder), or
    ``refused`` when the tool must refuse it naming the file."""

    kind: str
    path: Path
    entries: tuple[str, ...]
    refused: bool = False


ENCODINGS = {  # kind -> (codec, byte-order mark)
    "utf8": ("utf-8", b""),
    "utf8_bom": ("utf-8", b"\xef\xbb\xbf"),
    "utf16_le_bom": ("utf-16-le", b"\xff\xfe"),
    "utf16_be_bom": ("utf-16-be", b"\xfe\xff"),
    "utf32_le_bom": ("utf-32-le", b"\xff\xfe\x00\x00"),
}
LINE_ENDS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def input_lists(root: str | Path, seed: int = 0) -> tuple[Path, list[ListCase]]:
    """Photos under ``root``/night (one named with a trailing space, one with a leading one) and a
    list of them per encoding x line end, each with a comment and a line of only spaces; plus a
    BOM-less UTF-16 list, refused. Returns the folder and the lists."""
    night = Path(root) / "night"
    rng = np.random.default_rng(seed)
    tag = f"{rng.integers(1_000_000):06d}"
    names = (f"a_{tag}.jpg", f"scan {tag}.jpg ", f" lead_{tag}.jpg", f"é_{tag}.jpg")
    for name in names:
        _write(night / name, photo(rng))
    cases = []
    for (kind, (codec, bom)), (end_kind, end) in ((e, le) for e in ENCODINGS.items() for le in LINE_ENDS.items()):
        text = end.join(["# tonight's photos", *names, "   ", ""])
        path = _write(night / f"list_{kind}_{end_kind}.txt", bom + text.encode(codec))
        cases.append(ListCase(f"{kind}_{end_kind}", path, names))
    wide = _write(night / "list_utf16_no_bom.txt", "\n".join(names).encode("utf-16-le"))
    cases.append(ListCase("utf16_no_bom", wide, (), refused=True))
    return night, cases


def tiny_pngs(folder: str | Path, count: int, seed: int = 0, size: tuple[int, int] = (12, 8)) -> list[Path]:
    """``count`` distinct tiny PNGs in class folders (``rust/``, ``norust/``, a thousand per
    subfolder): per-image costs with nothing else to measure."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        out.append(
            _write(
                Path(folder) / ("rust" if i % 2 else "norust") / f"{i // 1000:03d}" / f"p{i:06d}.png", buf.getvalue()
            )
        )
    return out


def big_list(folder: str | Path, count: int, seed: int = 0) -> Path:
    """``count`` tiny PNGs and ``folder``/list.txt naming each (absolute paths, LF)."""
    listed = tiny_pngs(folder, count, seed)
    path = Path(folder) / "list.txt"
    path.write_text("".join(f"{p}\n" for p in listed), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the measurement inputs of docs/hostile-inputs.md (round 2).")
    parser.add_argument("what", choices=("tiny-pngs", "big-list"))
    parser.add_argument("folder")
    parser.add_argument("count", type=int)
    args = parser.parse_args(argv)
    if args.what == "tiny-pngs":
        print(len(tiny_pngs(args.folder, args.count)), "PNGs under", args.folder)
    else:
        print(big_list(args.folder, args.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
