"""``corrosion COMMAND ...``: one front door to the jobs, beside their ``python -m`` commands.

    corrosion build-dataset --input DIR --output_dir OUT      (= python -m pipelines.build_dataset)
    corrosion train-classifier --data OUT --model_dir M       (= python -m training.train_classifier)
    corrosion train-detector --data OUT --model_dir M         (= python -m training.train_detector)
    corrosion train-segmenter --data OUT --model_dir M        (= python -m training.train_segmenter)
    corrosion leave-one-source-out --data OUT --output L      (= python -m training.leave_one_source_out)
    corrosion evaluate --model_dir M --data OUT --output E    (= python -m training.evaluate)
    corrosion export-lite ...                                 (= python -m training.export_lite)
    corrosion infer --input 'gs://b/**.jpg' ...               (= python -m pipelines.batch_inference)
    corrosion review --results GLOB --budget N ...            (= python -m pipelines.review_queue)
    corrosion versions publish|list|promote ...               (= python -m training.versions)
    corrosion compare --baseline ROOT --candidate M ...       (= python -m training.compare)
    corrosion compare-nights --baseline GLOB --candidate GLOB (= python -m pipelines.compare_nights)

The jobs are imported by name only when run: the library never depends on the jobs built on it,
and ``corrosion --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

COMMANDS = {
    "build-dataset": ("pipelines.build_dataset", "labelled photos -> validated, de-duplicated, split TFRecords"),
    "train-classifier": ("training.train_classifier", "train, evaluate and export the rust classifier"),
    "train-detector": ("training.train_detector", "train, evaluate and export the rust detector"),
    "train-segmenter": ("training.train_segmenter", "train, evaluate and export the rust-region (mask) model"),
    "leave-one-source-out": ("training.leave_one_source_out", "the rust-region recipe scored on sources it never saw"),
    "evaluate": ("training.evaluate", "score an exported model on a data set or a raw labelled folder"),
    "export-lite": ("training.export_lite", "write and check an exported model's LiteRT copy"),
    "infer": ("pipelines.batch_inference", "score a survey archive: rows, errors, previews, report"),
    "review": ("pipelines.review_queue", "a night's rows -> the photos to review, as pre-annotations"),
    "versions": ("training.versions", "publish, list and promote model versions under a model root"),
    "compare": ("training.compare", "a candidate model against the one in use; promoted only if not worse"),
    "compare-nights": ("pipelines.compare_nights", "one night scored by two versions, photo by photo"),
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose "expected one argument" also says how to give a value that starts
    with ``-`` (a file named ``-scan.jpg``, a pattern ``-*.jpg``): argparse reads such a word as an
    option, and only ``--input=-scan.jpg`` passes it as the value. Every command that takes paths
    builds its parser from this class."""

    _EXPECTED = re.compile(r"argument (\S+?)(?:/\S+)?: expected (?:one|at least one) argument")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        super().error(message + dash_hint(message, getattr(self, "_words", [])))


def dash_hint(message: str, words: Sequence[str]) -> str:
    """``; to give ...`` when ``message`` is argparse's complaint about an option whose value, as
    typed in ``words``, starts with ``-``; empty otherwise."""
    match = ArgumentParser._EXPECTED.match(message)
    if not match:
        return ""
    flags = set(match.group(0).split(":")[0].removeprefix("argument ").split("/"))
    for word, value in zip(words, words[1:], strict=False):
        if word in flags and value.startswith("-"):
            return f"; a value starting with '-' must be joined to its option with '=': {word}={value}"
    flag = sorted(flags)[-1]
    return f"; if its value starts with '-', join it to the option with '=' (e.g. {flag}=-name)"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}  (python -m {module})" for name, (module, summary) in COMMANDS.items()]
    return (
        "usage: corrosion COMMAND [ARGS...]   (corrosion COMMAND --help for its arguments)\n\ncommands:\n"
        + "\n".join(lines)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"corrosion: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    result = importlib.import_module(COMMANDS[command][0]).main(rest)
    return result if isinstance(result, int) else 0  # a job may return its report (a dict) when it succeeds


if __name__ == "__main__":
    sys.exit(main())
