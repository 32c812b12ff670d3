"""corrosion.core.listing: every name found is a readable file or a problem with its reason; literals stay literal."""

from __future__ import annotations

import os
from pathlib import Path

from corrosion.core import listing, paths


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


def test_walk_classifies_every_name_follows_links_once_and_reports_a_loop_once(tmp_path):
    root = _tree(tmp_path / "t")
    found = listing.walk(str(root))
    files = {f.path: f.size for f in found if isinstance(f, listing.Found)}
    problems = {f.path: f.reason for f in found if isinstance(f, listing.Problem)}
    assert files == {f"{root}/real/a.jpg": 1, f"{root}/site[1]/b.jpg": 2, f"{root}/line\nbreak.jpg": 1}
    assert problems == {  # the loop once, under its own folder (not again as alias/loop)
        f"{root}/fifo.jpg": listing.NOT_REGULAR,
        f"{root}/dangling.jpg": listing.DANGLING_SYMLINK,
        f"{root}/caf\\xe9.jpg": listing.UNDECODABLE_NAME,
        f"{root}/real/loop": listing.LINK_LOOP,
    }


def test_a_symlinked_folder_outside_the_root_is_a_problem_naming_the_link_unless_followed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.jpg").write_bytes(b"x")
    (tmp_path / "survey").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "survey" / "mounted")
    found = listing.walk(str(tmp_path / "survey"))
    assert [(f.path, f.reason) for f in found] == [(f"{tmp_path}/survey/mounted", listing.LINK_OUTSIDE)]
    assert found[0].folder and "--follow_links_outside" in found[0].detail
    followed = listing.walk(str(tmp_path / "survey"), follow_outside=True)
    assert [f.path for f in followed] == [f"{tmp_path}/survey/mounted/x.jpg"]


def test_match_glob_filters_like_beam_and_leaves_out_own_outputs(tmp_path):
    root = _tree(tmp_path / "t")
    (root / "out").mkdir()
    (root / "out" / "preview.jpg").write_bytes(b"p")
    matched = listing.match_glob(f"{root}/**.jpg", exclude=[str(root / "out")])
    names = {paths.relative(m.path, str(root)): getattr(m, "reason", "") for m in matched}
    assert names == {  # ** could match under the loop, so the loop has its row
        "caf\\xe9.jpg": listing.UNDECODABLE_NAME,
        "dangling.jpg": listing.DANGLING_SYMLINK,
        "fifo.jpg": listing.NOT_REGULAR,
        "line\nbreak.jpg": "",
        "real/a.jpg": "",
        "real/loop": listing.LINK_LOOP,
        "site[1]/b.jpg": "",
    }
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


def test_single_star_matches_backslashes_and_undecodable_names_within_a_folder(tmp_path):
    root = _tree(tmp_path / "t")
    (root / "back\\slash.jpg").write_bytes(b"e")
    names = {paths.relative(m.path, str(root)) for m in listing.match_glob(f"{root}/*.jpg")}
    assert {"back\\slash.jpg", "caf\\xe9.jpg", "fifo.jpg", "dangling.jpg", "line\nbreak.jpg"} == names


def test_a_glob_through_a_symlinked_folder_matches_and_double_star_lists_each_file_once(tmp_path):
    surveys = tmp_path / "surveys"
    (surveys / "2024-06-01").mkdir(parents=True)
    (surveys / "2024-06-01" / "a.jpg").write_bytes(b"a")
    os.symlink(surveys / "2024-06-01", surveys / "latest")
    assert [m.path for m in listing.match_glob(f"{tmp_path}/surv*/latest/*")] == [f"{surveys}/latest/a.jpg"]
    assert [m.path for m in listing.match_glob(f"{surveys}/**")] == [f"{surveys}/2024-06-01/a.jpg"]
    assert [m.path for m in listing.walk(str(surveys))] == [f"{surveys}/2024-06-01/a.jpg"]


def test_links_into_system_folders_are_not_walked(tmp_path):
    (tmp_path / "survey").mkdir()
    os.symlink("/proc", tmp_path / "survey" / "proc")
    found = listing.walk(str(tmp_path / "survey"))
    assert [(f.path, f.reason) for f in found] == [(f"{tmp_path}/survey/proc", listing.SYSTEM_FOLDER)]


def test_a_trailing_slash_means_every_file_in_the_folder(tmp_path):
    root = _tree(tmp_path / "t")
    assert [m.path for m in listing.match_glob(f"{root}/real/")] == [f"{root}/real/a.jpg"]


def test_keys_tell_apart_names_whose_printable_forms_agree(tmp_path):
    root = _tree(tmp_path / "t")
    (root / "caf\\xe9.jpg").write_bytes(b"literal backslash")
    matched = listing.match_glob(f"{root}/caf*")
    assert len(matched) == 2 and len({listing.key(m) for m in matched}) == 2
    assert {paths.display(m.path) for m in matched} == {f"{root}/caf\\xe9.jpg"}  # the one ambiguity of display


def test_glob_regex_follows_beam_syntax():
    regex = listing.glob_regex
    assert regex("/a/*.jpg").match("/a/x.jpg") and not regex("/a/*.jpg").match("/a/b/x.jpg")
    assert regex("/a/**.jpg").match("/a/b/c/x.jpg") and regex("/a/?.jpg").match("/a/x.jpg")
    assert regex("/a/[!x]y").match("/a/zy") and not regex("/a/[!x]y").match("/a/xy")
    assert regex(listing.escape_glob("/a/site[1]/*x?.jpg")).match("/a/site[1]/*x?.jpg")
    assert not regex(listing.escape_glob("/a/site[1]/*x?.jpg")).match("/a/site1/ax1.jpg")


def test_a_name_with_a_nul_byte_is_a_problem_not_an_exception():
    problem = listing.match_literal("/survey/a.jpg\x00")
    assert isinstance(problem, listing.Problem) and problem.reason == listing.INVALID_NAME
    assert problem.path == "/survey/a.jpg\\x00"
