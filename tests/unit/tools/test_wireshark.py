"""tools/wireshark/dcia.lua, the Wireshark dissector, run by the real tshark.

What the dissector registers (fields, flag bits, status names, the UDP port) is compared
with dcia.wire; how it decodes packets is compared, field by field and packet by packet,
with the scapy layer: every header field with its value, position and width, every flag
bit, the status name, the int8 elements, the Info column, and the expert info of a
malformed payload, whose message must be the one dcia.wire.malformation() gives.
tests/integration/test_wireshark_capture.py does the same for a capture a switch wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.fields import ByteEnumField, FlagsField
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from dcia.wire import (
    DCIA,
    DCIA_UDP_PORT,
    HEADER_BYTES,
    HEADER_FIELDS,
    MAX_WIRE_ELEMS,
    Flag,
    Status,
    malformation,
    peek,
)

TSHARK = shutil.which("tshark")
DISSECTOR = Path(__file__).resolve().parents[3] / "tools" / "wireshark" / "dcia.lua"

pytestmark = pytest.mark.skipif(
    TSHARK is None,
    reason="tshark is not installed (scripts/bootstrap.sh installs it: apt-get install tshark)",
)

MALFORMATIONS = {
    # expert field of the dissector: the message dcia.wire.malformation() gives for that class
    "dcia.malformed.short_header": r"\d+ bytes, shorter than the \d+-byte header",
    "dcia.malformed.version": r"DCIA version \d+, expected \d+",
    "dcia.malformed.too_many": r"\d+ elements, more than the maximum \d+",
    "dcia.malformed.truncated": r"truncated: header says \d+ elements, \d+ present",
    "dcia.malformed.trailing": r"\d+ bytes after the \d+-element tensor",
}
FLAGGED = "dcia.flagged_malformed"


def tshark(*args: str) -> str:
    """tshark's standard output with the dissector loaded; fails on any Lua error.

    tshark runs with an empty home folder: a copy of the dissector among the user's
    personal plugins, or their preferences, must not change what it shows.
    """
    report = list(args[:2]) if args[:1] == ("-G",) else []  # -G must come first
    cmd = [TSHARK, *report, "-X", f"lua_script:{DISSECTOR}", *args[len(report):]]
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")} | {"HOME": home}
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "Lua" not in result.stderr, result.stderr
    return result.stdout


def registered(report: str) -> list[list[str]]:
    """The rows of ``tshark -G report`` that belong to the dissector."""
    rows = [line.split("\t") for line in tshark("-G", report).splitlines()]
    return [r for r in rows if any(c == "dcia" or c.startswith("dcia.") for c in r[1:3])]


# ------------------------------------------------------ what tshark printed, as data --


def tshark_decodes(pcap: Path) -> list[dict]:
    """Per frame of ``pcap``: the DCIA fields tshark shows, None for a frame without DCIA.

    Each is {"fields": {abbrev: [(show, showname, pos, size), ...]}, "experts": [(expert
    field, message)], "udp_payload": offset of the UDP payload, "info": Info column}.
    """
    root = ET.fromstring(tshark("-r", str(pcap), "-T", "pdml"))
    info = tshark("-r", str(pcap), "-T", "fields", "-e", "_ws.col.Info").splitlines()
    frames = []
    for packet, column in zip(root.iter("packet"), info, strict=True):
        protos = {p.get("name"): p for p in packet.iter("proto")}
        if "dcia" not in protos:
            frames.append(None)
            continue
        fields: dict[str, list] = {}
        experts = []
        for f in protos["dcia"].iter("field"):
            name = f.get("name")
            if name == "_ws.expert":
                kinds = [c.get("name") for c in f if c.get("name").startswith("dcia.")]
                message = [c.get("show") for c in f if c.get("name") == "_ws.expert.message"]
                experts.append((*kinds, *message))
            elif name.startswith("dcia."):
                fields.setdefault(name, []).append(
                    (f.get("show"), f.get("showname"), int(f.get("pos")), int(f.get("size"))))
        udp = protos["udp"]
        frames.append({"fields": fields, "experts": experts, "info": column,
                       "udp_payload": int(udp.get("pos")) + 8})
    return frames


# ------------------------------------------------------- what scapy decodes, as data --


def udp_payload(frame: Ether) -> bytes | None:
    """The DCIA payload of a frame, as scapy's binding sees it; None if it carries none."""
    if UDP not in frame or frame[UDP].dport != DCIA_UDP_PORT or IP not in frame:
        return None
    payload = bytes(frame[UDP])[8:frame[UDP].len]
    return payload or None  # neither scapy nor Wireshark's UDP dissects an empty payload


def scapy_expects(payload: bytes) -> dict:
    """What the dissector must show for a DCIA payload: DCIA() of a well-formed one, peek()
    and the elements present of a malformed one."""
    problem = malformation(payload)
    head = peek(payload) if problem else DCIA(payload)
    header, offset = {}, 0
    for name, bits in HEADER_FIELDS:
        if offset + bits // 8 <= len(payload):
            header[f"dcia.{name}"] = (int(getattr(head, name)), offset, bits // 8)
        offset += bits // 8
    if problem:
        tensor = payload[HEADER_BYTES:HEADER_BYTES + head.n_elems]
        elems = [b - 256 if b > 127 else b for b in tensor]
    else:
        elems = DCIA(payload).elems
    return {"header": header, "flags": int(head.flags), "status": int(head.status),
            "elems": elems, "problem": problem,
            "summary": None if problem else DCIA(payload).mysummary()}


def assert_agrees(seen: dict, payload: bytes, frame_no: int) -> None:
    """tshark's decoding of one DCIA payload is scapy's, field for field."""
    want = scapy_expects(payload)
    where = f"frame {frame_no}"
    base = seen["udp_payload"]
    fields = dict(seen["fields"])

    for abbrev, (value, offset, size) in want["header"].items():
        [(show, _, pos, width)] = fields.pop(abbrev)
        assert (int(show, 0), pos - base, width) == (value, offset, size), f"{where}: {abbrev}"

    if "dcia.flags" in want["header"]:
        for flag in Flag:
            [(show, showname, _, _)] = fields.pop(f"dcia.flags.{flag.name}")
            assert show == ("1" if want["flags"] & flag else "0"), f"{where}: {flag.name}"
            assert showname.endswith(f"{flag.name}: {bool(want['flags'] & flag)}"), showname
    if "dcia.status" in want["header"]:
        [(_, showname, _, _)] = seen["fields"]["dcia.status"]
        status = want["status"]
        name = Status(status).name if status in set(Status) else "Unknown"
        assert showname == f"status: {name} ({status})", f"{where}: {showname}"

    elems = fields.pop("dcia.elem", [])
    assert [int(e[0]) for e in elems] == want["elems"], f"{where}: elements"
    assert [e[2] - base for e in elems] == [HEADER_BYTES + i for i in range(len(elems))]
    if want["elems"]:
        [(_, showname, pos, size)] = fields.pop("dcia.elems")
        assert (pos - base, size) == (HEADER_BYTES, len(want["elems"])), f"{where}: tensor"
    assert set(fields) - set(MALFORMATIONS) - {FLAGGED} == set(), f"{where}: unexpected fields"

    experts = [e for e in seen["experts"] if e[0] in MALFORMATIONS]
    if want["problem"]:
        [(kind, message)] = experts
        assert message == want["problem"], f"{where}: expert info"
        assert re.fullmatch(MALFORMATIONS[kind], message), f"{where}: {kind} for {message!r}"
        assert seen["info"].endswith(f"[malformed: {want['problem']}]"), seen["info"]
    else:
        assert experts == [], f"{where}: {experts}"
        if not want["flags"] & ~sum(Flag):  # scapy shows undefined flag bits as '?'
            assert seen["info"] == want["summary"], where
    flagged = [e for e in seen["experts"] if e[0] == FLAGGED]
    assert len(flagged) == (1 if want["flags"] & Flag.MALFORMED else 0), f"{where}: flagged"


def assert_tshark_agrees_with_scapy(pcap: Path) -> list[dict]:
    """Every frame of ``pcap``: DCIA in tshark exactly where scapy sees DCIA, with the same
    decoding. Returns tshark's decodings (None for frames without DCIA)."""
    frames = rdpcap(str(pcap))
    decoded = tshark_decodes(pcap)
    assert len(decoded) == len(frames)
    for n, (frame, seen) in enumerate(zip(frames, decoded), start=1):
        payload = udp_payload(frame)
        assert (seen is None) == (payload is None), f"frame {n}: DCIA in only one of the two"
        if payload is not None:
            assert_agrees(seen, payload, n)
    return decoded


# --------------------------------------------------------------------- the captures --

CARRIER = Ether(src="08:00:00:00:01:11", dst="08:00:00:00:01:00") / IP(src="10.0.1.1",
                                                                        dst="10.0.2.2")


def dcia_frame(payload, *, sport: int = DCIA_UDP_PORT, pad_to: int = 0) -> bytes:
    raw = bytes(CARRIER / UDP(sport=sport, dport=DCIA_UDP_PORT) / payload)
    return raw.ljust(pad_to, b"\0")  # Ethernet padding, as a NIC adds to short frames


def requests() -> list[bytes]:
    return [dcia_frame(p) for p in [
        DCIA(model_id=1, model_version=1, request_id=1, elems=list(range(16))),
        DCIA(model_id=0xFFFF, model_version=0xFFFF, next_layer=255, net_layers=255,
             request_id=0xFFFFFFFF, reserved=0xFF, elems=[-128, 127, 0, -1]),
        DCIA(model_id=7, model_version=3, next_layer=2, net_layers=1, request_id=99, elems=[]),
        DCIA(model_id=2, request_id=5, elems=[(i % 256) - 128 for i in range(MAX_WIRE_ELEMS)]),
    ]] + [dcia_frame(DCIA(model_id=3, request_id=6, elems=[5]), sport=40000, pad_to=60)]


def answers() -> list[bytes]:
    frames = [dcia_frame(DCIA(flags=Flag.RESULT, model_id=1, model_version=1, next_layer=4,
                              net_layers=3, request_id=77, elems=[3, -9, 100]))]
    frames += [dcia_frame(DCIA(flags=Flag.ERROR, status=s, model_id=1, request_id=100 + s))
               for s in Status]
    frames.append(dcia_frame(DCIA(flags=Flag.ERROR, status=200, request_id=9)))  # no such status
    return frames


def every_flag() -> list[bytes]:
    combos = [*Flag, Flag.RESULT | Flag.MALFORMED, sum(Flag), 0x80, 0xFF]
    return [dcia_frame(DCIA(flags=int(c), model_id=4, request_id=i, elems=[i, -i]))
            for i, c in enumerate(combos)]


def malformed() -> list[bytes]:
    good = bytes(DCIA(model_id=5, model_version=2, request_id=321, elems=[1, -2, 3, -4]))
    return [dcia_frame(Raw(p)) for p in [
        good[:HEADER_BYTES - 1], good[:3],                     # header cut short
        bytes(DCIA(ver=2, elems=[1, 2])), bytes(DCIA(ver=0)),  # wrong version
        bytes(DCIA(ver=255, n_elems=9, elems=[1])),            # wrong version first
        good[:-1], good[:HEADER_BYTES],                        # n_elems beyond the payload
        bytes(DCIA(n_elems=2000, elems=[7] * 3)),              # beyond MAX_WIRE_ELEMS
        good + b"\x05\x06", good + b"\x00",                   # bytes after the tensor
        bytes(DCIA(flags=Flag.MALFORMED, n_elems=3, elems=[1])),
    ]] + [dcia_frame(Raw(good[:3]), pad_to=60)]


def not_dcia() -> list[bytes]:
    return [bytes(CARRIER / UDP(sport=DCIA_UDP_PORT, dport=9999) / bytes(DCIA(elems=[1]))),
            bytes(CARRIER / UDP(sport=1234, dport=5678) / b"hello"),
            bytes(CARRIER / ICMP()), dcia_frame(Raw(b""))]


@pytest.fixture
def pcap(tmp_path):
    def write(frames: list[bytes]) -> Path:
        path = tmp_path / "capture.pcap"
        wrpcap(str(path), [Ether(f) for f in frames])
        return path
    return write


# -------------------------------------------------------------------------- tests --


def test_the_dissector_registers_the_header_fields_of_the_scapy_layer_in_wire_order():
    rows = [r for r in registered("fields") if r[0] == "F"]
    header = [(r[1], r[2], r[3]) for r in rows if r[2].count(".") == 1 and r[3] != "FT_NONE"
              and r[2] not in ("dcia.elems", "dcia.elem")]
    assert header == [(name, f"dcia.{name}", f"FT_UINT{bits}") for name, bits in HEADER_FIELDS]
    types = {r[2]: r[3] for r in rows}
    assert (types["dcia.elems"], types["dcia.elem"]) == ("FT_BYTES", "FT_INT8")
    assert {r[2] for r in rows if r[3] == "FT_NONE"} == set(MALFORMATIONS) | {FLAGGED}


def test_the_flag_bits_are_those_of_the_flag_enum_and_the_scapy_flags_field():
    bits = {r[2]: int(r[6], 16) for r in registered("fields")
            if r[0] == "F" and r[2].startswith("dcia.flags.")}
    assert bits == {f"dcia.flags.{f.name}": f.value for f in Flag}
    [field] = [f for f in DCIA.fields_desc if isinstance(f, FlagsField)]
    assert bits == {f"dcia.flags.{name}": 1 << i for i, name in enumerate(field.names)}


def test_the_status_names_are_those_of_the_status_enum_and_the_scapy_field():
    values = {int(r[2]): r[3] for r in registered("values") if r[1] == "dcia.status"}
    assert values == {s.value: s.name for s in Status}
    [field] = [f for f in DCIA.fields_desc if isinstance(f, ByteEnumField)]
    assert values == field.i2s


def test_the_dissector_takes_the_dcia_udp_port():
    assert ["udp.port", str(DCIA_UDP_PORT), "dcia"] in [
        r for r in (line.split("\t") for line in tshark("-G", "decodes").splitlines())]


def test_requests_are_decoded_as_scapy_decodes_them(pcap):
    decoded = assert_tshark_agrees_with_scapy(pcap(requests()))
    assert all(d is not None and d["experts"] == [] for d in decoded)
    assert len(decoded[3]["fields"]["dcia.elem"]) == MAX_WIRE_ELEMS


def test_answers_with_each_status_are_decoded_with_its_name(pcap):
    decoded = assert_tshark_agrees_with_scapy(pcap(answers()))
    shown = [d["fields"]["dcia.status"][0][1] for d in decoded]
    assert shown == ["status: OK (0)", *[f"status: {s.name} ({s.value})" for s in Status],
                     "status: Unknown (200)"]


def test_every_flag_is_shown_as_a_named_bit(pcap):
    decoded = assert_tshark_agrees_with_scapy(pcap(every_flag()))
    assert decoded[0]["fields"]["dcia.flags"][0][1] == "flags: 0x01 (RESULT)"
    assert decoded[len(Flag)]["fields"]["dcia.flags"][0][1] == "flags: 0x05 (RESULT+MALFORMED)"
    assert decoded[2]["experts"] == [(FLAGGED, "a switch flagged this packet MALFORMED")]


def test_malformed_payloads_get_the_expert_info_of_their_malformation_class(pcap):
    frames = malformed()
    decoded = assert_tshark_agrees_with_scapy(pcap(frames))
    kinds = [next((e[0] for e in d["experts"] if e[0] in MALFORMATIONS), None) for d in decoded]
    assert set(kinds) == set(MALFORMATIONS), "each malformation class is exercised"
    assert kinds[:2] == kinds[-1:] * 2 == ["dcia.malformed.short_header"] * 2
    assert decoded[-1]["experts"][0][1] == "3 bytes, shorter than the 16-byte header"


def test_other_udp_traffic_is_left_alone(pcap):
    assert assert_tshark_agrees_with_scapy(pcap(not_dcia())) == [None] * 4


def test_installed_in_the_personal_lua_plugins_folder_it_loads_without_options(pcap, tmp_path):
    plugins = tmp_path / "home" / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(DISSECTOR, plugins)
    cmd = [TSHARK, "-r", str(pcap(requests()[:1])), "-T", "fields",
           "-e", "dcia.request_id", "-e", "dcia.elem"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                            env={"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and "Lua" not in result.stderr, result.stderr
    assert result.stdout.split() == ["1", ",".join(str(i) for i in range(16))]
