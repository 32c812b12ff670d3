"""The one skeleton both training jobs follow, from the command line to the exit status.

    python -m training.train_classifier | train_detector | train_segmenter --data DATASET (--model_dir MODEL | --model_root ROOT)
        [--config FILE] [--set KEY=VALUE ...] [shortcut flags]

A job is a ``JobSpec``: its typed config class, default YAML, shortcut flags, and ``run(job)``,
which checks the data, builds the model, trains, chooses the threshold on validation, exports,
evaluates the export and writes its reports (``training.common.report``). Here: the same command
line for both, one logging setup, and data errors as a message and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corrosion import cli
from corrosion.core import config
from corrosion.models import versions
from training.common.records import DatasetError

log = logging.getLogger("training")

Shortcuts = dict[str, tuple[str, type, str]]  # "flag|alias" -> (dotted key, type, help)


@dataclass(frozen=True)
class Job:
    """One run as the command line asked for it: built once, read by every step."""

    data: str
    model_dir: str
    config: Any
    config_file: str | None
    args: argparse.Namespace


@dataclass(frozen=True)
class JobSpec:
    description: str
    config_cls: type
    default_file: str
    run: Callable[[Job], dict]
    shortcuts: Shortcuts = field(default_factory=dict)
    arguments: Callable[[argparse.ArgumentParser], None] | None = None  # the job's own extra flags


def parser(spec: JobSpec) -> argparse.ArgumentParser:
    p = cli.ArgumentParser(description=spec.description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", required=True, help="data set directory written by pipelines.build_dataset (local or gs://)"
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--model_dir", help="where the SavedModel, metadata, metrics and model card go")
    where.add_argument(
        "--model_root",
        help="a model root (local or gs://): the model is published as ROOT/<version>/, the version in use "
        "untouched (promote it with python -m training.versions promote ROOT VERSION)",
    )
    config.add_arguments(p, spec.default_file, spec.shortcuts)
    if spec.arguments:
        spec.arguments(p)
    return p


def parse(spec: JobSpec, argv: list[str] | None = None) -> Job:
    args = parser(spec).parse_args(argv)
    cfg = config.from_arguments(spec.config_cls, args, spec.default_file, spec.shortcuts)
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="corrosion-model-")
    return Job(args.data.rstrip("/"), model_dir.rstrip("/"), cfg, args.config, args)


def main(spec: JobSpec, argv: list[str] | None = None) -> int:
    """Parse, run, report: 0 when the model is exported, 2 when the data or config cannot train one."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        job = parse(spec, argv)
        spec.run(job)
        if job.args.model_root:
            version = versions.publish(job.model_dir, job.args.model_root)
            shutil.rmtree(job.model_dir, ignore_errors=True)  # the temporary folder it was trained into
            log.info(
                "published %s to %s; the nightly job still loads %s until `python -m training.versions promote %s %s`",
                version, job.args.model_root, versions.current(job.args.model_root) or "nothing",
                job.args.model_root, version,
            )  # fmt: skip
    except (DatasetError, config.ConfigError) as exc:
        log.error("%s", exc)
        return 2
    return 0
