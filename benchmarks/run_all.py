"""Runs every ``benchmarks/bench_*.py`` module's ``main()`` in turn (``make bench``).

Each benchmark measures its baseline in the same run and prints ratios, since these machines are
noisy; results also go to ``bench_out/<name>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", help="run only benchmarks whose name contains this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    failed = []
    for name in names:
        print(f"=== {name}", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").main([])
        except Exception as exc:  # keep going: one broken benchmark should not hide the others
            logging.exception("benchmark %s failed", name)
            failed.append(f"{name}: {exc}")
    if failed:
        print("FAILED:\n" + "\n".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
