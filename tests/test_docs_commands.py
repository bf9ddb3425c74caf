"""Every ``wrim ...`` command and every ``pip install`` line quoted in README.md and docs/*.md works as written.

A ``wrim`` command (in a shell block, or inline code starting with ``wrim <command>``) must parse with the current
``wrim`` argument parser (a mention, ``wrim eval`` or ``wrim eval --flip``, must name a command and its flag);
a ``wrim train`` with a shipped config must also load it with its ``key=value``
overrides. Synopsis forms (``[--flag]``) and elided commands (a ``...`` argument) are skipped; shell variables stand
for a value. A ``pip install`` line may only name extras that pyproject.toml declares, and must install wrim from
the clone (``-e ".[extra]"``), since wrim is not on the package index.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from wrim.cli import build_parser
from wrim.engine.config import list_configs, load_config

pytestmark = pytest.mark.repo  # reads README.md and docs/

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
_INLINE = re.compile(r"`((?:python -m )?wrim [a-z][^`]*|pip install [^`]*)`")
_COMMAND = re.compile(r"^(wrim|python -m wrim|torchrun\b.* -m wrim|pip install) ")
_SHELL_VARIABLE = re.compile(r"\$\(\(.*?\)\)|\$\(.*?\)|\$\{?\w+\}?")


def _lines(page: Path) -> list[tuple[str, str]]:
    """``(where, command)`` for each shell command of a page: block lines (continuations joined) and inline code."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        if match.group(1) not in ("bash", "sh", "shell", "console", "text", ""):
            continue
        body = match.group(2).replace("\\\n", " ")
        line_no = text[: match.start()].count("\n") + 2
        for offset, line in enumerate(body.splitlines()):
            found.append((f"{page.name}:{line_no + offset}", line.split(" #")[0].strip()))
    for match in _INLINE.finditer(text):
        found.append((f"{page.name}:{text[: match.start()].count(chr(10)) + 1}", match.group(1)))
    commands = []
    for where, line in found:
        for part in re.split(r"&&|\|\||;|\||\s\d?>", line):
            if _COMMAND.match(part.strip()):
                commands.append((where, part.strip()))
    return commands


def _wrim_commands() -> list[tuple[str, list[str]]]:
    out = []
    for page in PAGES:
        for where, command in _lines(page):
            words = shlex.split(_SHELL_VARIABLE.sub("X", command))
            if "wrim" not in words:
                continue
            args = words[words.index("wrim") + 1 :]
            if not args or "..." in args or any(a.startswith("[") for a in args) or args[0].startswith("-h"):
                continue
            out.append((where, args))
    return out


def _pip_lines() -> list[tuple[str, list[str]]]:
    return [
        (where, shlex.split(command)[2:])
        for page in PAGES
        for where, command in _lines(page)
        if command.startswith("pip install ")
    ]


WRIM_COMMANDS = _wrim_commands()
PIP_LINES = _pip_lines()


def test_the_pages_quote_commands():
    assert len(WRIM_COMMANDS) >= 30 and len(PIP_LINES) >= 5  # the extraction finds the docs' commands


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@pytest.mark.parametrize(("where", "args"), WRIM_COMMANDS, ids=[w for w, _ in WRIM_COMMANDS])
def test_wrim_command_parses(where, args):
    parser = build_parser()
    commands = _subcommands(parser)
    assert args[0] in commands, f"{where}: `wrim {args[0]}` is not a command; there are {sorted(commands)}"
    if len(args) == 1 or (len(args) == 2 and args[1].startswith("--")):  # a mention: `wrim eval --flip`
        flags = {flag for action in commands[args[0]]._actions for flag in action.option_strings}
        assert args[1:] == [] or args[1].split("=")[0] in flags, f"{where}: `wrim {args[0]}` has no {args[1]}"
        return
    try:
        parsed = parser.parse_args(args)
    except SystemExit as err:
        raise AssertionError(f"{where}: `wrim {' '.join(args)}` does not parse with the current CLI") from err
    if parsed.command == "train" and not parsed.resume and parsed.config in list_configs():
        load_config(parsed.config, parsed.overrides)  # unknown keys or bad values raise, naming the key


@pytest.mark.parametrize(("where", "args"), PIP_LINES, ids=[w for w, _ in PIP_LINES])
def test_pip_install_line_names_declared_extras(where, args):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for arg in args:
        name, _, rest = arg.partition("[")
        if not rest:
            continue
        assert name in (".", "./"), f"{where}: {arg!r} installs wrim from the package index, where it is not"
        named = set(rest.rstrip("]").split(","))
        assert named <= extras, f"{where}: {arg!r} names extras {sorted(named - extras)} missing from pyproject.toml"
    assert "wrim" not in args, f"{where}: wrim is not on the package index; install the clone with -e ."


def test_resume_keys_are_the_same_in_the_docs_and_the_help():
    from wrim.engine.config import RESUME_OVERRIDABLE

    text = " ".join((ROOT / "docs" / "training.md").read_text(encoding="utf-8").split())
    sentence = text[text.index("A resumed run uses its saved") :].split(";")[0]
    named = set(re.findall(r"`([\w.*]+)`", sentence)) - {"config.yaml"}
    assert named == {key + "*" if key.endswith(".") else key for key in RESUME_OVERRIDABLE}
    resume_help = next(a.help for a in _subcommands(build_parser())["train"]._actions if a.dest == "resume")
    assert all(key in resume_help for key in named)
