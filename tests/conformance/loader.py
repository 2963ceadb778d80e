"""Loads the committed p4c outputs of the conformance programs (programs/NAME.json)."""
from __future__ import annotations

from pathlib import Path

from embedded_switch.switch import Switch

PROGRAMS = Path(__file__).parent / "programs"


def load(name: str, **kwargs) -> Switch:
    """A Switch running programs/NAME.json (committed; tests/conformance/compile_programs.sh
    makes it again where p4c exists)."""
    path = PROGRAMS / f"{name}.json"
    sw = Switch(**kwargs)
    sw.load_pipeline(path.read_bytes())
    return sw


def eth(ethertype: int, dst: bytes = b"\x02\x00\x00\x00\x00\x02", src: bytes = b"\x02\x00\x00\x00\x00\x01") -> bytes:
    return dst + src + ethertype.to_bytes(2, "big")
