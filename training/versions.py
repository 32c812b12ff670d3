"""Publish, list and promote model versions under a model root (``corrosion.models.versions``).

    python -m training.versions publish MODEL_DIR ROOT [--promote]   # copy a trained model in as ROOT/<version>/
    python -m training.versions list ROOT                              # versions, the current one marked
    python -m training.versions promote ROOT VERSION                   # the nightly job loads VERSION from now on

ROOT is local or ``gs://``. The nightly job takes the root as ``--classifier`` / ``--detector`` and
loads the version ``ROOT/current`` names (or ``--classifier_version`` / ``--detector_version``).
"""

from __future__ import annotations

import logging
import sys

from corrosion import cli
from corrosion.models import versions


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="copy a trained model folder in as ROOT/<its version>/")
    pub.add_argument("model_dir")
    pub.add_argument("root")
    pub.add_argument("--promote", action="store_true", help="and make it the current version")
    lst = sub.add_parser("list", help="the complete versions, the current one marked")
    lst.add_argument("root")
    pro = sub.add_parser("promote", help="point ROOT/current at VERSION")
    pro.add_argument("root")
    pro.add_argument("version")
    args = p.parse_args(argv)
    try:
        if args.command == "publish":
            version = versions.publish(args.model_dir, args.root)
            print(version)
            if args.promote:
                versions.promote(args.root, version)
        elif args.command == "promote":
            versions.promote(args.root, args.version)
        else:
            now = versions.current(args.root)
            for version in versions.versions(args.root):
                print(f"{'*' if version == now else ' '} {version}")
    except (versions.VersionError, FileNotFoundError) as exc:
        logging.getLogger("training.versions").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
