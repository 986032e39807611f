"""``--help`` of fleet-sim and of every subcommand reads as plain text: no argparse
escapes left over (``%%``), no reST markup, only citations of the project's own docs,
and lines that fit a terminal (descriptions are printed as given, not wrapped)."""

from __future__ import annotations

import pytest

from fleet_sim import cli

COMMANDS = [[], *([name] for name in (*cli.COMMANDS, "replay"))]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fleet-sim")
def test_help_is_plain_text(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: fleet-sim {' '.join(command)}".rstrip())
    for leftover in ("%%", "``", "DESIGN"):
        assert leftover not in text, f"{leftover!r} in fleet-sim {' '.join(command)} --help"
    assert max(len(line) for line in text.splitlines()) <= 100
