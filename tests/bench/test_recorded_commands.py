"""Every command a committed result records still runs at HEAD: its module resolves to a ``main`` and every flag it
names is one that module's parser takes. (The commands are not run: they took a GPU for minutes.)"""
import argparse
import importlib
import json
import re

import pytest

from dcanalysis.paths import RESULTS_DIR


class Parsed(Exception):
    pass


def recorded_commands() -> list[tuple[str, str]]:
    found = set()
    for path in RESULTS_DIR.rglob("*.json"):
        for command in re.findall(r"python3? -m (dcanalysis[\w.]*)([^\"\n]*)", path.read_text()):
            # the command's own words: up to a note in brackets or the next command of the same job
            found.add((command[0], re.split(r"[(;]|, then ", command[1])[0]))
    return sorted(found)


def parser_of(module: str) -> argparse.ArgumentParser:
    """The parser ``module``'s ``main`` builds (stopped as it parses)."""
    mod = importlib.import_module(module if module != "dcanalysis.bench" else "dcanalysis.bench.bench")
    seen = []

    def stop(self, args=None, namespace=None):
        seen.append(self)
        raise Parsed

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = stop
    try:
        with pytest.raises(Parsed):
            mod.main([])
    finally:
        argparse.ArgumentParser.parse_args = original
    return seen[0]


def test_the_results_record_commands():
    assert len(recorded_commands()) > 20


@pytest.mark.parametrize("module, args", recorded_commands())
def test_each_recorded_command_names_a_module_and_flags_of_head(module, args):
    parser = parser_of(module)
    flags = {f for f in re.findall(r"(?<!\S)(--[\w-]+)", args)}
    unknown = flags - set(parser._option_string_actions)
    assert not unknown, f"python -m {module}: {sorted(unknown)} are not flags of HEAD"
