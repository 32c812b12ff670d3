"""corrosion.listing: every name found is a readable file or a problem with its reason; literals stay literal."""

from __future__ import annotations

import os
from pathlib import Path

from corrosion import listing, paths


def _tree(root: Path) -> Path:
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.jpg").write_bytes(b"a")
    (root / "site[1]").mkdir()
    (root / "site[1]" / "b.jpg").write_bytes(b"bb")
    os.mkfifo(root / "fifo.jpg")
    os.symlink(root / "nowhere.jpg", root / "dangling.jpg")
    os.symlink(root / "real", root / "alias")  # a second name for real/: listed once
    os.symlink(root, root / "real" / "loop")  # a link back to an ancestor
    with open(os.fsencode(root) + b"/caf\xe9.jpg", "wb") as handle:
        handle.write(b"c")
    (root / "line\nbreak.jpg").write_bytes(b"d")
    return root


def test_walk_classifies_every_name_and_follows_links_once(tmp_path):
    root = _tree(tmp_path / "t")
    found = listing.walk(str(root))
    files = {f.path: f.size for f in found if isinstance(f, listing.Found)}
    problems = {f.path: f.reason for f in found if isinstance(f, listing.Problem)}
    assert files == {f"{root}/real/a.jpg": 1, f"{root}/site[1]/b.jpg": 2, f"{root}/line\nbreak.jpg": 1}
    assert problems == {
        f"{root}/fifo.jpg": listing.NOT_REGULAR,
        f"{root}/dangling.jpg": listing.DANGLING_SYMLINK,
        f"{root}/caf\\xe9.jpg": listing.UNDECODABLE_NAME,
    }


def test_a_symlinked_folder_outside_the_root_is_followed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.jpg").write_bytes(b"x")
    (tmp_path / "survey").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "survey" / "mounted")
    assert [f.path for f in listing.walk(str(tmp_path / "survey"))] == [f"{tmp_path}/survey/mounted/x.jpg"]


def test_match_glob_filters_like_beam_and_leaves_out_own_outputs(tmp_path):
    root = _tree(tmp_path / "t")
    (root / "out").mkdir()
    (root / "out" / "preview.jpg").write_bytes(b"p")
    matched = listing.match_glob(f"{root}/**.jpg", exclude=[str(root / "out")])
    names = sorted(paths.relative(m.path, str(root)) for m in matched)
    assert names == ["caf\\xe9.jpg", "dangling.jpg", "fifo.jpg", "line\nbreak.jpg", "real/a.jpg", "site[1]/b.jpg"]
    assert [m.path for m in listing.match_glob(f"{root}/real/*.jpg")] == [f"{root}/real/a.jpg"]


def test_match_literal_never_globs(tmp_path):
    root = _tree(tmp_path / "t")
    assert listing.match_literal(f"{root}/site[1]/b.jpg") == listing.Found(f"{root}/site[1]/b.jpg", 2)
    star = listing.match_literal(f"{root}/real/*.jpg")
    assert isinstance(star, listing.Problem) and star.reason == listing.MISSING
    folder = listing.match_literal(f"{root}/real")
    assert isinstance(folder, listing.Problem) and folder.reason == listing.IS_FOLDER
    assert listing.escape_glob("gs://b/site[1]/*.jpg") == "gs://b/site[[]1]/[*].jpg"


def test_display_escapes_only_what_cannot_be_shown_on_one_line():
    assert paths.display("/a/ordinary name ü.jpg") == "/a/ordinary name ü.jpg"
    assert paths.display("/a/line\nbreak\t.jpg") == "/a/line\\nbreak\\t.jpg"
    assert paths.display(os.fsdecode(b"/a/caf\xe9.jpg")) == "/a/caf\\xe9.jpg"
