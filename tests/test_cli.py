"""The command line: version, help with examples everywhere, no torch for data preparation."""

import subprocess
import sys

import pytest

from panseg import __version__
from panseg.cli.main import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"panseg {__version__}"


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_command_has_help_with_examples():
    commands = list(_commands(build_parser()))
    assert ("convert", "coco") in [c for c, _ in commands]
    for command, parser in commands:
        text = parser.format_help()
        assert "examples:" in text, f"panseg {' '.join(command)} --help has no examples"


def test_group_without_subcommand_prints_help(capsys):
    assert main(["convert"]) == 2
    assert "coco" in capsys.readouterr().out


DATA_PREP = """
import sys, tempfile, os
from panseg.cli.main import main
d = tempfile.mkdtemp()
assert main(["synth", "coco", "--out", d + "/c", "--images", "2"]) == 0
assert main(["convert", "coco", "--root", d + "/c", "--out", d + "/r", "--num-shards", "1",
             "--workers", "1", "--no-progress"]) == 0
assert main(["inspect", d + "/r/val-00000-of-00001.tfrecord"]) == 0
heavy = sorted(m for m in ("torch", "tensorflow") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_data_preparation_never_imports_torch():
    result = subprocess.run([sys.executable, "-c", DATA_PREP], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
