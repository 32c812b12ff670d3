"""Perceptual hashing, near-duplicate grouping, representative choice and stable splits."""

from __future__ import annotations

import io
import random
from collections import Counter

import numpy as np
from PIL import Image

from corrosion.data import dedup, splits
from corrosion.data.dataset_config import DedupConfig, SplitConfig
from corrosion.testing import synthetic

CFG = DedupConfig()


def _photo(seed: int, size=(160, 120)) -> Image.Image:
    pixels, _ = synthetic.render(np.random.default_rng(seed), size[0], size[1], 2, "steel")
    return Image.fromarray(pixels)


def _reencoded(img: Image.Image, scale: float, quality: int) -> Image.Image:
    out = io.BytesIO()
    img.resize((int(img.width * scale), int(img.height * scale)), Image.Resampling.LANCZOS).save(
        out, "JPEG", quality=quality
    )
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _sig(key: str, img: Image.Image, image_class="rust", shas=None, source_splits=(), origins=()) -> dedup.Signature:
    return dedup.Signature(
        key, shas or (key,), dedup.dhash(img), dedup.thumbnail(img), image_class, tuple(source_splits), tuple(origins)
    )


def test_resized_reencoded_copy_is_a_confirmed_near_duplicate():
    img = _photo(1)
    copy = _reencoded(img, 0.6, 70)
    other = _photo(2)
    assert dedup.hamming(dedup.dhash(img), dedup.dhash(copy)) <= CFG.max_hamming
    assert dedup.thumbs_agree(dedup.thumbnail(img), dedup.thumbnail(copy), CFG)
    assert not dedup.thumbs_agree(dedup.thumbnail(img), dedup.thumbnail(other), CFG)
    assert dedup.pixel_hash(img) != dedup.pixel_hash(copy)
    assert dedup.pixel_hash(img) == dedup.pixel_hash(img.copy())


def test_dhash_match_alone_is_not_enough():
    """Two different flat images can share a dHash; the thumbnail measure must refuse them."""
    dark = Image.new("RGB", (64, 48), (30, 30, 30))
    light = Image.new("RGB", (64, 48), (220, 220, 220))
    assert dedup.dhash(dark) == dedup.dhash(light)
    assert dedup.near_duplicate_pairs([_sig("a", dark), _sig("b", light)], CFG) == []


def test_banded_search_finds_exactly_the_brute_force_pairs():
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(40)]
    hashes = base + [h ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for h in base[:20]]
    hashes += [h ^ sum(1 << b for b in rng.sample(range(64), CFG.max_hamming)) for h in base[20:30]]
    thumb = bytes(range(256))
    sigs = [dedup.Signature(str(i), (str(i),), h, thumb, "rust") for i, h in enumerate(hashes)]
    brute = {
        (i, j)
        for i in range(len(sigs))
        for j in range(i + 1, len(sigs))
        if dedup.hamming(hashes[i], hashes[j]) <= CFG.max_hamming
    }
    assert len(brute) >= 30
    assert set(dedup.near_duplicate_pairs(sigs, CFG)) == brute


def test_groups_are_transitive_and_include_origins():
    a = _photo(3)
    b = _reencoded(a, 0.8, 85)
    c = _reencoded(b, 0.8, 85)
    d = _photo(4)
    e = _photo(5)
    sigs = [
        _sig("a", a),
        _sig("b", b),
        _sig("c", c),
        _sig("d", d, origins=("rf:img1",)),
        _sig("e", e, origins=("rf:img1",)),
        _sig("f", _photo(6)),
    ]
    groups = dedup.near_duplicate_groups(sigs, CFG)
    assert sorted(sorted(s.key for s in g) for g in groups) == [["a", "b", "c"], ["d", "e"], ["f"]]


def test_origin_patterns():
    patterns = CFG.origin_patterns
    assert dedup.origin_of("000140_jpg.rf.328acb9aa4cdaba2a1fa83a7d35dfa4f", "rf", patterns) == "rf:000140"
    assert dedup.origin_of("rust.10", "cd", patterns) is None


def test_representative_boxes_win_and_conflicts_are_reported():
    rep, conflict = dedup.pick_representative(
        [dedup.Copy("/a/download/x.jpg", "rust", 0, False), dedup.Copy("/a/objDet/x.jpg", "rust", 3, True)]
    )
    assert rep.path == "/a/objDet/x.jpg" and conflict is None
    rep, conflict = dedup.pick_representative(
        [dedup.Copy("/b.jpg", "rust", 0, False), dedup.Copy("/a.jpg", "rust", 0, False)]
    )
    assert rep.path == "/a.jpg" and conflict is None
    _, conflict = dedup.pick_representative(
        [dedup.Copy("/r/x.jpg", "rust", 0, False), dedup.Copy("/n/x.jpg", "no_rust", 0, False)]
    )
    assert "/r/x.jpg = rust" in conflict and "/n/x.jpg = no_rust" in conflict


def test_split_fractions_and_determinism():
    cfg = SplitConfig()
    keys = [f"{i:064x}" for i in range(20000)]
    counts = Counter(splits.split_for_key(k, cfg.fractions, cfg.salt) for k in keys)
    assert abs(counts["train"] / 20000 - 0.8) < 0.015
    assert abs(counts["validation"] / 20000 - 0.1) < 0.01 and abs(counts["test"] / 20000 - 0.1) < 0.01
    assert [splits.split_for_key(k, cfg.fractions, cfg.salt) for k in keys[:50]] == [
        splits.split_for_key(k, cfg.fractions, cfg.salt) for k in keys[:50]
    ]
    other_salt = [splits.split_for_key(k, cfg.fractions, "other") for k in keys[:200]]
    assert other_salt != [splits.split_for_key(k, cfg.fractions, cfg.salt) for k in keys[:200]]


def _group(key: str, *shas: str, cls="rust", source_splits=()) -> list[dedup.Signature]:
    return [dedup.Signature(key, tuple(shas), 0, b"", cls, tuple(source_splits))]


def test_group_split_depends_only_on_its_smallest_sha():
    cfg = SplitConfig()
    old = [_group(f"k{i}", f"{i + 100:064x}") for i in range(200)]
    before = splits.assign(old, cfg)
    more = old + [_group(f"n{i}", f"{i + 5000:064x}") for i in range(200)]
    after = splits.assign(more, cfg)
    assert all(after[k].split == a.split for k, a in before.items())
    # a new member with a larger sha joins a group: the key, hence the split, stays
    grown = [[*old[0], *_group("late", f"{9999:064x}")]] + old[1:]
    assert splits.assign(grown, cfg)["k0"].split == before["k0"].split


def test_previous_splits_pin_groups_and_source_splits_can_be_honoured():
    cfg = SplitConfig()
    group = _group("k", "aa", "bb", source_splits=("validation",))
    natural = splits.assign([group], cfg)["k"].split
    pinned = next(s for s in ("train", "validation", "test") if s != natural)
    assert splits.assign([group], cfg, previous={"bb": pinned})["k"].split == pinned
    honour = SplitConfig(honour_source_splits=True)
    assert splits.assign([group], honour)["k"].split == "validation"
    mixed = [*group, *_group("j", "cc", source_splits=("train",))]
    assert splits.assign([mixed], honour)["k"].split == splits.split_for_key("aa", honour.fractions, honour.salt)


def test_conflicting_near_duplicate_group_is_rejected():
    group = [*_group("a", "01"), *_group("b", "02", cls="no_rust")]
    result = splits.assign([group], SplitConfig())
    assert result["a"].rejected and result["a"].rejected == result["b"].rejected
    assert "no_rust and rust" in result["a"].rejected
    assert splits.assign([group], SplitConfig(), reject_conflicts=False)["a"].rejected is None


def test_real_web_corrosion_near_duplicates(shared_data):
    """web-corrosion re-encoded/resized many photos, often across its train/validation folders."""
    from corrosion.imaging import images

    files = sorted((shared_data / "web-corrosion").glob("*/*/*.jpg"))
    sigs = []
    for f in files:
        img = images.decode(f.read_bytes(), str(f))
        rel = f.relative_to(shared_data / "web-corrosion")
        sigs.append(_sig(str(rel), img, image_class=rel.parts[1], source_splits=(rel.parts[0],)))
    groups = dedup.near_duplicate_groups(sigs, CFG)
    multi = [g for g in groups if len(g) > 1]
    across = [g for g in multi if len({s.source_splits for s in g}) > 1]
    assert len(multi) >= 200 and len(across) >= 50, (len(multi), len(across))
    group_of = {s.key: i for i, g in enumerate(groups) for s in g}
    # looked at by eye: a crop of the same pipes photo across folders; two different bolts on white
    assert group_of["train/CORROSION/4e6c08fb88.jpg"] == group_of["validation/CORROSION/pipe.jpg"]
    assert group_of["train/NOCORROSION/b927a9ba65.jpg"] != group_of["validation/NOCORROSION/c7c8a6b977.jpg"]
    assignment = splits.assign(groups, SplitConfig())
    for g in across:
        assert len({assignment[s.key].split for s in g}) == 1
