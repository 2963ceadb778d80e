"""Loads the committed p4c outputs of the conformance programs (programs/NAME.json)."""
from __future__ import annotations

from pathlib import Path

import pytest

from embedded_switch.switch import Switch

PROGRAMS = Path(__file__).parent / "programs"


def load(name: str, **kwargs) -> Switch:
    """A Switch running programs/NAME.json; skips the test when p4c never produced it."""
    path = PROGRAMS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path.name} not compiled yet: run tests/conformance/compile_programs.sh where p4c exists")
    sw = Switch(**kwargs)
    sw.load_pipeline(path.read_bytes())
    return sw


def eth(ethertype: int, dst: bytes = b"\x02\x00\x00\x00\x00\x02", src: bytes = b"\x02\x00\x00\x00\x00\x01") -> bytes:
    return dst + src + ethertype.to_bytes(2, "big")
