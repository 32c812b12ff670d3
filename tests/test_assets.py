"""Asset and zone from the folder layout (a pattern) or a map CSV; bad maps refused naming the line."""

from __future__ import annotations

import pytest

from corrosion.inference import assets


@pytest.mark.parametrize(
    ("pattern", "rel", "expected"),
    [
        ("{asset}/{zone}/...", "hull-7/port-side/frame-112.jpg", ("hull-7", "port-side")),
        ("{asset}/{zone}/...", "hull-7/port-side/deck/a.jpg", ("hull-7", "port-side")),
        ("{asset}/{zone}/...", "hull-7/frame-112.jpg", (None, None)),  # too shallow: no zone folder
        ("{asset}/...", "tank-3/x.jpg", ("tank-3", None)),
        ("*/{asset}-{zone}/...", "2026/bridge-north-girder/p.jpg", ("bridge", "north-girder")),
        ("site/{asset}/*/{zone}", "site/t1/raw/z9.jpg", ("t1", "z9.jpg")),
        ("site/{asset}/...", "other/t1/a.jpg", (None, None)),
    ],
)
def test_pattern_reads_asset_and_zone_from_the_path_under_the_root(pattern, rel, expected):
    resolver = assets.AssetResolver(root="/surveys/night-2", pattern=pattern)
    assert resolver.resolve(f"/surveys/night-2/{rel}") == expected


def test_a_photo_outside_the_root_or_without_a_pattern_has_no_asset():
    assert assets.AssetResolver(root="/s", pattern="{asset}/...").resolve("/elsewhere/a/b.jpg") == (None, None)
    assert assets.AssetResolver(root="/s").resolve("/s/hull/zone/a.jpg") == (None, None)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty segment"),
        ("{asset}//...", "empty segment"),
        (".../{asset}", "'...' may only be the last segment"),
        ("{asset}/{deck}", "unknown placeholder {deck}"),
        ("{asset}/{asset}", "{asset} appears twice"),
        ("{asset/...", "unbalanced brace"),
        ("*/...", "names neither {asset} nor {zone}"),
    ],
)
def test_bad_patterns_are_refused_naming_the_reason(pattern, message):
    with pytest.raises(assets.AssetError, match=_re(f"asset_pattern {pattern!r}: ") + ".*" + _re(message)):
        assets.compile_pattern(pattern)


def _re(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("/surveys/n2/**.jpg", "/surveys/n2"),
        ("/surveys/n2/hull-*/**", "/surveys/n2"),
        ("/surveys/n2/", "/surveys/n2"),
        ("/surveys/n2/a.jpg", "/surveys/n2"),
        ("gs://bucket/n2/*/*.jpg", "gs://bucket/n2"),
    ],
)
def test_survey_root_is_the_folder_before_the_first_glob_character(given, root):
    assert assets.survey_root(given, None) == root


def test_survey_root_of_an_input_list_is_its_folder():
    assert assets.survey_root(None, "/surveys/n2/photos.txt") == "/surveys/n2"


def test_the_map_wins_over_the_pattern_by_path_and_by_bare_name(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text(
        "\ufeffimage,asset,zone\nhull-7/port-side/frame-1.jpg,hull-7,bow\nIMG_0042.JPG,tank-3,roof\nloose.jpg,tank-3,\n"
    )
    resolver = assets.resolver("/s", "{asset}/{zone}/...", str(path))
    assert resolver.resolve("/s/hull-7/port-side/frame-1.jpg") == ("hull-7", "bow")
    assert resolver.resolve("/s/hull-7/port-side/frame-2.jpg") == ("hull-7", "port-side")
    assert resolver.resolve("/s/any/folder/IMG_0042.JPG") == ("tank-3", "roof")
    assert resolver.resolve("/s/loose.jpg") == ("tank-3", None)
    assert resolver.resolve("/s/unmapped.jpg") == (None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("photo,asset\na.jpg,x\n", "line 1: the header needs columns ('image', 'asset', 'zone') (missing ['image'])"),
        ("image,asset,zone\na.jpg,x,z\n,y,z\n", "line 3: empty image"),
        ("image,asset,zone\n/abs/a.jpg,x,z\n", "line 2: image '/abs/a.jpg' must be relative to the survey root"),
        ("image,asset,zone\n../a.jpg,x,z\n", "line 2: image '../a.jpg' must be relative"),
        ("image,asset,zone\nhull/*.jpg,x,z\n", "line 2: image 'hull/*.jpg' holds a glob character"),
        ("image,asset,zone\na.jpg,,\n", "line 2: 'a.jpg' names neither an asset nor a zone"),
        ("image,asset,zone\na.jpg,x,z,extra\n", "line 2: more fields than the header's 3"),
        (
            "image,asset,zone\na.jpg,x,z\nb.jpg,y,z\na.jpg,y,z\n",
            "line 4: 'a.jpg' is mapped to ('y', 'z') here and to ('x', 'z') on line 2",
        ),
    ],
)
def test_a_bad_map_is_refused_naming_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(assets.AssetError, match=_re(f"--asset_map {path}, {message}")):
        assets.read_map(str(path))


def test_a_missing_map_is_refused_naming_it(tmp_path):
    with pytest.raises(assets.AssetError, match=_re(f"--asset_map {tmp_path / 'no.csv'}: no such file")):
        assets.read_map(str(tmp_path / "no.csv"))
