"""What a person installing mcp-chat, or the MCP registry, reads about it agrees with itself."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

import mcp_chat
from mcp_chat.cli import main

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVER = json.loads((ROOT / "server.json").read_text())


def test_the_version_is_pyprojects_everywhere() -> None:
    assert mcp_chat.__version__ == PROJECT["version"]
    assert SERVER["version"] == PROJECT["version"]
    assert {p["version"] for p in SERVER["packages"]} == {PROJECT["version"]}


def test_the_registry_entry_names_the_package_and_its_two_transports() -> None:
    assert len(SERVER["description"]) < 100
    assert SERVER["name"].count("/") == 1
    assert {p["identifier"] for p in SERVER["packages"]} == {PROJECT["name"]}
    commands = {
        p["transport"]["type"]: [a["value"] for a in p["packageArguments"]]
        for p in SERVER["packages"]
    }
    assert commands == {"stdio": ["stdio"], "streamable-http": ["serve"]}
    # PyPI packages prove whose they are by this marker in the README.
    marker = re.search(r"mcp-name: (\S+)", (ROOT / "README.md").read_text())
    assert marker is not None and marker.group(1) == SERVER["name"]


def test_the_command_prints_that_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mcp-chat {PROJECT['version']}"
