"""dedup.near_duplicate_pairs: the banded search finds exactly the brute-force pairs, each once, and
keeps no set of compared pairs (it grew with the square of the image count)."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest

from corrosion.data import dedup
from corrosion.data.dataset_config import DedupConfig


def _flip(rng: random.Random, value: int, bits: int, n: int) -> int:
    return value ^ sum(1 << b for b in rng.sample(range(bits), n))


def _signatures(cfg: DedupConfig, seed: int = 0) -> list[dedup.Signature]:
    """Random hashes and copies of them at 0 to max_hamming + 2 bits (0 or 1 bit off shares nearly
    every band, max_hamming bits as few as one), half of the copies with a thumbnail that disagrees."""
    rng, bits = random.Random(seed), cfg.hash_size**2
    agree = bytes(range(256))
    disagree = bytes(np.random.default_rng(seed).integers(0, 256, 256, dtype=np.uint8))
    hashes = [rng.getrandbits(bits) for _ in range(60)]
    thumbs = [agree] * len(hashes)
    for k, base in enumerate(list(hashes)):
        for n in (0, 1, 2, cfg.max_hamming // 2, cfg.max_hamming, cfg.max_hamming + 1, cfg.max_hamming + 2):
            hashes.append(_flip(rng, base, bits, n))
            thumbs.append(disagree if (k + n) % 2 else agree)
    return [
        dedup.Signature(str(i), (str(i),), h, t, "rust") for i, (h, t) in enumerate(zip(hashes, thumbs, strict=True))
    ]


def _brute_force(sigs: list[dedup.Signature], cfg: DedupConfig) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i in range(len(sigs))
        for j in range(i + 1, len(sigs))
        if dedup.hamming(sigs[i].dhash, sigs[j].dhash) <= cfg.max_hamming
        and dedup.thumbs_agree(sigs[i].thumb, sigs[j].thumb, cfg)
    ]


def _shared_bands(a: int, b: int, cfg: DedupConfig) -> int:
    bands = dedup._bands(cfg.hash_size**2, cfg.max_hamming + 1)
    return sum(((a ^ b) >> lo) & ((1 << (hi - lo)) - 1) == 0 for lo, hi in bands)


@pytest.mark.parametrize("cfg", [DedupConfig(), DedupConfig(hash_size=12, max_hamming=14)], ids=["64bit", "144bit"])
def test_the_banded_search_finds_exactly_the_brute_force_pairs_each_once(cfg):
    sigs = _signatures(cfg)
    found = dedup.near_duplicate_pairs(sigs, cfg)
    brute = _brute_force(sigs, cfg)
    assert sorted(found) == brute and len(set(found)) == len(found)
    assert all(i < j for i, j in found)
    shared = [_shared_bands(sigs[i].dhash, sigs[j].dhash, cfg) for i, j in brute]
    assert max(shared) == len(dedup._bands(cfg.hash_size**2, cfg.max_hamming + 1)) and min(shared) < 4
    assert sum(s > 1 for s in shared) > 100  # pairs met in several bands, reported once
    close = sum(dedup.hamming(sigs[i].dhash, sigs[j].dhash) <= cfg.max_hamming for i, j in _all_pairs(len(sigs)))
    assert close > len(brute)  # some close pairs were refused by their thumbnails


def _all_pairs(n: int):
    return ((i, j) for i in range(n) for j in range(i + 1, n))


def test_the_search_holds_no_memory_that_grows_with_the_pairs_compared():
    """2,000 random hashes: ~340,000 same-bucket pairs, which the old set of seen pairs held (~30 MB)."""
    rng, thumb = random.Random(1), bytes(range(256))
    sigs = [dedup.Signature(str(i), (), rng.getrandbits(64), thumb, "rust") for i in range(2_000)]
    tracemalloc.start()
    try:
        dedup.near_duplicate_pairs(sigs, DedupConfig())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20, f"{peak / 2**20:.1f} MB"
