"""One night scored by two model versions, photo by photo: what a promotion changed for inspectors.

Rows are matched on the photo's URI. A photo in one night only, or an error row in one and a
result in the other, is listed as such, never dropped. For photos in both: the rust call flipped
(either way), the ASTM D610 grade moved (by how many grades), the rust probability and the rusted
area moved. The table is ordered so that what an inspector must look at again comes first:
flipped calls, then the largest grade moves, then the largest probability moves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

log = logging.getLogger(__name__)

BOTH, BASELINE_ONLY, CANDIDATE_ONLY = "both", "baseline only", "candidate only"
TO_RUST, TO_CLEAN = "clean -> rust", "rust -> clean"
KEPT = ("image_uri", "image_sha256", "rust_probability", "is_rust", "num_boxes", "rust_area_fraction", "rust_grade")
VERSIONS = ("classifier_version", "detector_version")
COLUMNS = (
    "image_uri", "presence", "call_change", "grade_change", "probability_change", "area_change",
    "rust_probability_baseline", "rust_probability_candidate", "is_rust_baseline", "is_rust_candidate",
    "rust_grade_baseline", "rust_grade_candidate", "rust_area_fraction_baseline", "rust_area_fraction_candidate",
    "num_boxes_baseline", "num_boxes_candidate", "same_photo", "error_baseline", "error_candidate",
)  # fmt: skip


def latest_rows(table: pd.DataFrame, key: str, side: str) -> pd.DataFrame:
    """One row per ``key`` (the latest ``processed_at`` where a photo was scored twice, e.g. by two
    runs of a night), logged: shared by this comparison and ``survey_changes``' nights."""
    twice = table[key].duplicated(keep=False)
    if twice.any():
        log.warning("%s: %d photos have more than one row; the latest is compared", side, table[twice][key].nunique())
        table = table.sort_values("processed_at", kind="mergesort").drop_duplicates(key, keep="last")
    return table


def _night(rows: Sequence[dict], errors: Sequence[dict], side: str) -> pd.DataFrame:
    """One row per photo URI (the latest processed row where a URI was scored twice), with its error if any."""
    table = latest_rows(pd.DataFrame(list(rows), columns=[*KEPT, *VERSIONS, "processed_at"]), "image_uri", side)
    failed = pd.DataFrame(list(errors), columns=["image_uri", "stage", "reason", "message"])
    failed = failed.assign(error=failed.stage + ": " + failed.reason)[["image_uri", "error"]]
    failed = failed.drop_duplicates("image_uri", keep="last")
    return table.drop(columns="processed_at").merge(failed, on="image_uri", how="outer")


def compare_nights(
    baseline: Sequence[dict],
    candidate: Sequence[dict],
    baseline_errors: Sequence[dict] = (),
    candidate_errors: Sequence[dict] = (),
) -> pd.DataFrame:
    """The photo-by-photo table (``COLUMNS``), most important change first."""
    joined = _night(baseline, baseline_errors, "baseline").merge(
        _night(candidate, candidate_errors, "candidate"),
        on="image_uri",
        how="outer",
        suffixes=("_baseline", "_candidate"),
    )
    scored = {side: joined[f"rust_probability_{side}"].notna() for side in ("baseline", "candidate")}
    joined["presence"] = BOTH
    joined.loc[~scored["candidate"], "presence"] = BASELINE_ONLY
    joined.loc[~scored["baseline"], "presence"] = CANDIDATE_ONLY
    joined.loc[~scored["baseline"] & ~scored["candidate"], "presence"] = "error in both"
    both = scored["baseline"] & scored["candidate"]
    before = joined.is_rust_baseline.astype("boolean")
    after = joined.is_rust_candidate.astype("boolean")
    joined["call_change"] = ""
    joined.loc[both & ~before & after, "call_change"] = TO_RUST
    joined.loc[both & before & ~after, "call_change"] = TO_CLEAN
    joined["grade_change"] = (joined.rust_grade_candidate - joined.rust_grade_baseline).where(both).astype("Int64")
    joined["probability_change"] = (joined.rust_probability_candidate - joined.rust_probability_baseline).where(both)
    joined["area_change"] = (joined.rust_area_fraction_candidate - joined.rust_area_fraction_baseline).where(both)
    joined["same_photo"] = (joined.image_sha256_baseline == joined.image_sha256_candidate).where(both)
    order = pd.DataFrame(
        {
            "flipped": joined.call_change != "",
            "one_side": joined.presence != BOTH,
            "grade": joined.grade_change.abs().fillna(0).astype(float),
            "probability": joined.probability_change.abs().fillna(0),
        }
    )
    ranked = order.sort_values(["flipped", "one_side", "grade", "probability"], ascending=False, kind="mergesort")
    return joined.loc[ranked.index, list(COLUMNS)].reset_index(drop=True)


def versions_of(rows: Sequence[dict]) -> dict[str, list[str]]:
    """The model versions a night's rows name (several where the night was scored piecemeal)."""
    return {v: sorted({str(r.get(v) or "") for r in rows} - {""}) for v in VERSIONS}


def summary(table: pd.DataFrame, baseline: Sequence[dict], candidate: Sequence[dict]) -> dict:
    both = table[table.presence == BOTH]
    moved = both.grade_change.abs()
    return {
        "photos": {k: int(v) for k, v in table.presence.value_counts().items()},
        "versions": {"baseline": versions_of(baseline), "candidate": versions_of(candidate)},
        "calls": {
            "flipped_to_rust": int((both.call_change == TO_RUST).sum()),
            "flipped_to_clean": int((both.call_change == TO_CLEAN).sum()),
            "rust_baseline": int(both.is_rust_baseline.astype(bool).sum()),
            "rust_candidate": int(both.is_rust_candidate.astype(bool).sum()),
        },
        "grades": {
            "compared": int(moved.notna().sum()),
            "moved_by_1": int((moved == 1).sum()),
            "moved_by_2_or_more": int((moved >= 2).sum()),
            "worse": int((both.grade_change < 0).sum()),  # D610: a lower grade is more rust
            "better": int((both.grade_change > 0).sum()),
        },
        "mean_abs_probability_change": None if both.empty else float(both.probability_change.abs().mean()),
        "photos_changed_between_nights": int((both.same_photo == False).sum()),  # noqa: E712 (nullable)
    }


def markdown(s: dict, top: pd.DataFrame) -> str:
    v = s["versions"]
    lines = [
        "# The same photos, two model versions",
        "",
        f"Baseline: classifier {', '.join(v['baseline']['classifier_version']) or '-'}, "
        f"region model {', '.join(v['baseline']['detector_version']) or '-'}. "
        f"Candidate: classifier {', '.join(v['candidate']['classifier_version']) or '-'}, "
        f"region model {', '.join(v['candidate']['detector_version']) or '-'}.",
        "",
        "Photos: " + (", ".join(f"{n} {k}" for k, n in s["photos"].items()) or "none") + ".",
        f"Calls flipped: {s['calls']['flipped_to_rust']} clean -> rust, {s['calls']['flipped_to_clean']} rust -> clean "
        f"(rust calls {s['calls']['rust_baseline']} -> {s['calls']['rust_candidate']}; each version calls rust at its own "
        "threshold, so a call can flip while the probability barely moves).",
        f"D610 grades: {s['grades']['moved_by_1']} moved by one, {s['grades']['moved_by_2_or_more']} by two or more "
        f"({s['grades']['worse']} to more rust, {s['grades']['better']} to less) of {s['grades']['compared']} graded.",
        "",
    ]
    shown = top[(top.call_change != "") | (top.presence != BOTH) | (top.grade_change.abs().fillna(0) >= 1)]
    if not shown.empty:
        lines += ["| photo | presence | call | grade | probability |", "|---|---|---|---|---|"]
        for r in shown.head(50).itertuples():
            grade = "" if pd.isna(r.grade_change) else f"{r.rust_grade_baseline:.0f} -> {r.rust_grade_candidate:.0f}"
            prob = "" if pd.isna(r.probability_change) else (
                f"{r.rust_probability_baseline:.3f} -> {r.rust_probability_candidate:.3f}"
            )  # fmt: skip
            lines.append(f"| {r.image_uri} | {r.presence} | {r.call_change} | {grade} | {prob} |")
        lines.append("")
    return "\n".join(lines)
