"""Every command the README's shell blocks tell a user to type exists: a make target in the Makefile, an
``stvg`` command, a script or module of this checkout, or an executable the pinned venv installs (a
command renamed upstream, such as ``huggingface-cli`` -> ``hf``, fails here instead of on a GPU host)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from flows.cli import FLOW_COMMANDS
from stvg.cli import COMMANDS

SHELL = {"cd", "export", "git", "printf", "curl", "ln"}  # the shell and the base system's tools
ASSIGNMENT = re.compile(r"^[A-Z_]+=\S*$")


def _commands(readme: Path) -> list[list[str]]:
    """The words of each command of the ```bash blocks (continued lines joined, comments left out)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and ASSIGNMENT.match(words[0]):
                words = words[1:]  # VAR=value before the command
            if words:
                lines.append(words)
    return lines


def _problem(words: list[str], root: Path, makefile: str) -> str | None:
    head = words[0]
    if head == "make":
        missing = [t for t in words[1:] if not t.startswith("-") and f"\n{t}:" not in makefile]
        return f"no make target {missing}" if missing else None
    if head == "stvg":
        ok = words[1] in FLOW_COMMANDS or words[1] in COMMANDS
        return None if ok else f"no stvg command {words[1]!r}"
    if head == ".venv/bin/python" and words[1] == "-m":
        return None if importlib.util.find_spec(words[2]) else f"no module {words[2]!r}"
    if "/" in head:
        return None if (root / head).is_file() else f"no file {head}"
    if head in SHELL:
        return None
    return None if (Path(sys.executable).parent / head).is_file() else f"the venv installs no {head!r}"


def test_the_readmes_commands_exist(repo_root: Path) -> None:
    makefile = "\n" + (repo_root / "Makefile").read_text()
    commands = _commands(repo_root / "README.md")
    assert len(commands) > 30  # the blocks were read
    problems = {" ".join(w): p for w in commands if (p := _problem(w, repo_root, makefile))}
    assert problems == {}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct", "the venv installs no 'huggingface-cli'"),
        ("make paper-2gpu", "no make target ['paper-2gpu']"),
        ("stvg deploy", "no stvg command 'deploy'"),
    ],
)
def test_a_command_that_does_not_exist_is_named(repo_root: Path, line: str, problem: str) -> None:
    makefile = "\n" + (repo_root / "Makefile").read_text()
    assert _problem(shlex.split(line), repo_root, makefile) == problem
