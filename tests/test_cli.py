"""The ``corrosion`` console command: each subcommand runs the same job as its ``python -m`` module."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from corrosion import cli
from corrosion.testing import synthetic

REPO = Path(__file__).resolve().parent.parent


def test_console_script_is_installed_and_lists_every_command():
    script = Path(sys.executable).parent / "corrosion"
    assert script.is_file(), f"{script} missing: `make venv` installs the console script from setup.py"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for name, (module, _) in cli.COMMANDS.items():
        assert f"  {name} " in done.stdout and f"python -m {module}" in done.stdout


def test_help_loads_no_tensorflow_and_an_unknown_command_is_an_error():
    code = "import sys\nfrom corrosion import cli\ncli.main(['--help'])\nassert 'tensorflow' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)
    assert cli.main(["build-data-set"]) == 2


def test_every_subcommand_answers_its_own_help():
    code = (
        "import contextlib, io, sys\nfrom corrosion import cli\n"
        "for name in cli.COMMANDS:\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            cli.main([name, '--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (name, exc.code)\n"
        "    assert 'usage:' in out.getvalue(), name\n"
        "    print(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == list(cli.COMMANDS)


def test_build_dataset_through_the_front_door(tmp_path, capsys):
    synthetic.generate_survey(tmp_path / "survey", n_rust=3, n_clean=2, seed=3)
    assert cli.main(["build-dataset", "--input", str(tmp_path / "survey"), "--output_dir", str(tmp_path / "ds")]) == 0
    stats = json.loads((tmp_path / "ds" / "stats.json").read_text())
    assert stats["records_total"] == 5
    assert json.loads(capsys.readouterr().out)["records_total"] == 5


# Each command that takes paths, given a path that starts with '-' (argparse reads it as an option).
# training.versions is not here: it takes its paths as positionals, for which argparse only says
# "the following arguments are required" and corrosion.cli.dash_hint has no hint yet.
DASH_VALUES = [
    ("training.compare", ["--baseline", "-models", "--candidate", "c", "--data", "d", "--output", "o"], "--baseline"),
    ("training.export_lite", ["m", "--classifier_config", "-classifier.yaml"], "--classifier_config"),
    (
        "pipelines.review_queue",
        ["--results", "-night*.csv", "--classifier", "c", "--budget", "1", "--output", "o"],
        "--results",
    ),
    ("pipelines.compare_nights", ["--baseline", "-old/*.csv", "--candidate", "c", "--output", "o"], "--baseline"),
    ("training.compare_region_models", ["--data", "-set", "--output", "o"], "--data"),
    ("training.leave_one_source_out", ["--data", "-set", "--output", "o"], "--data"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "argv", "flag"), DASH_VALUES, ids=[m for m, _, _ in DASH_VALUES])
def test_a_dash_leading_path_is_refused_saying_to_join_it_with_equals(module, argv, flag, capsys):
    value = argv[argv.index(flag) + 1]
    with pytest.raises(SystemExit) as raised:
        importlib.import_module(module).main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: expected one argument; " in err
    assert f"a value starting with '-' must be joined to its option with '=': {flag}={value}" in err
