"""The same night scored by two model versions, compared photo by photo.

    python -m pipelines.compare_nights \\
        --baseline 'OUT/date=2026-12-01/hull-7-results-*.csv' \\
        --candidate 'OUT_V2/date=2026-12-01/hull-7-results-*.csv' --output night-diff/

Each side is a night's result CSV shards (a glob, local or ``gs://``); their error shards beside
them (``-errors-``) are read too, so a photo that failed on one side is listed, not lost. Writes
``changes.csv`` (every photo, flipped calls and the largest grade moves first), ``summary.json``
and ``summary.md`` (``corrosion.review.night_diff``). To re-score a night with another version:
run ``pipelines.batch_inference`` on the same photos with ``--classifier_version`` /
``--detector_version`` and another ``--output``.
"""

from __future__ import annotations

import json
import logging
import sys

from corrosion import cli
from corrosion.core import io_utils
from corrosion.inference import results
from corrosion.review import night_diff

log = logging.getLogger("pipelines.compare_nights")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="the night's result CSV shards scored by the model in use (glob)")
    p.add_argument("--candidate", required=True, help="the same night's shards scored by the other version (glob)")
    p.add_argument("--output", required=True, help="folder for changes.csv, summary.json and summary.md")
    args = p.parse_args(argv)
    nights, errors = {}, {}
    for side in ("baseline", "candidate"):
        pattern = getattr(args, side)
        try:
            nights[side] = results.read_night(pattern)
        except FileNotFoundError as exc:
            raise SystemExit(f"--{side} {exc}") from None
        errors[side] = results.read_errors(results.errors_pattern(pattern))
        log.info("%s: %d result rows, %d error rows", side, len(nights[side]), len(errors[side]))
    table = night_diff.compare_nights(nights["baseline"], nights["candidate"], errors["baseline"], errors["candidate"])
    summary = night_diff.summary(table, nights["baseline"], nights["candidate"])
    text = night_diff.markdown(summary, table)
    io_utils.make_dirs(args.output)
    io_utils.write_text(io_utils.join(args.output, "changes.csv"), table.to_csv(index=False))
    io_utils.write_text(io_utils.join(args.output, "summary.json"), json.dumps(summary, indent=2) + "\n")
    io_utils.write_text(io_utils.join(args.output, "summary.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
