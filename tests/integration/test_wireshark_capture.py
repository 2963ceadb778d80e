"""The Wireshark dissector (tools/wireshark/dcia.lua) on captures a real switch wrote.

The embedded switch runs the committed DCIA pipeline on two veth pairs whose host ends are
in namespaces this test creates (tests/dataplane/rig.py), capturing every port with
``--pcap`` (SwitchConfig.pcap_dir). Host 1 sends tensors the switch computes, passes on
or flags as malformed; tshark's decoding of every frame of every capture must be the
scapy layer's (tests/unit/tools/test_wireshark.py).
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.packet import Raw

from dcia.arithmetic import Activation
from dcia.layers import DenseLayer
from dcia.targets import SwitchConfig, SwitchProcess, free_tcp_port
from dcia.wire import DCIA, DCIA_UDP_PORT, Flag
from tests.dataplane.rig import Rig, frame
from tests.dataplane_model import InstalledModel
from tests.netlab import NetLab
from tests.unit.tools.test_wireshark import FLAGGED, MALFORMATIONS, assert_tshark_agrees_with_scapy
from tests.unit.tools.test_wireshark import pytestmark as needs_tshark

pytestmark = [pytest.mark.netns, needs_tshark]

LAYER = DenseLayer(weights=[[1, 2, 3, 4], [-1, 0, 1, 0], [2, 2, 2, 2]], bias=[0, 10, -5],
                   mult=[1 << 15] * 3, shift=[15] * 3, act=Activation.RELU)


def sent_frames() -> list[bytes]:
    def dcia(payload) -> bytes:
        return bytes(frame(UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT) / payload))
    return [
        dcia(DCIA(model_id=1, model_version=1, request_id=1, elems=[1, -2, 3, 100])),  # computed
        dcia(DCIA(model_id=1, model_version=2, request_id=2, elems=[1, 2, 3, 4])),  # other version
        dcia(DCIA(model_id=9, model_version=1, request_id=3, elems=[5] * 16)),  # unknown model
        dcia(DCIA(flags=Flag.NO_OFFLOAD, model_id=1, model_version=1, request_id=4, elems=[1] * 4)),
        dcia(DCIA(flags=Flag.RESULT, model_id=1, request_id=5, next_layer=1, elems=[7, 8, 9])),
        dcia(DCIA(ver=2, model_id=1, model_version=1, request_id=6, elems=[1, 2, 3, 4])),
        dcia(Raw(bytes(DCIA(model_id=1, model_version=1, request_id=7, n_elems=4, elems=[1, 2])))),
        dcia(Raw(bytes(DCIA(model_id=1, request_id=8, n_elems=2000, elems=[1] * 4)))),
        dcia(Raw(bytes(DCIA(model_id=1, model_version=1, request_id=9, elems=[1] * 4)) + b"\x07")),
        dcia(Raw(bytes(DCIA(model_id=1, request_id=10))[:9])),
    ]


def test_tshark_decodes_what_a_switch_captured_as_scapy_does(tmp_path):
    pcap_dir = tmp_path / "pcap"
    sent = sent_frames()
    with NetLab("ws", ports=2) as lab:
        config = SwitchConfig(ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
                              grpc_addr=f"127.0.0.1:{free_tcp_port()}",
                              log_file=tmp_path / "switch.log", pcap_dir=pcap_dir)
        with SwitchProcess("embedded", config, stdout_path=tmp_path / "switch.out") as proc:
            rig = Rig(lab, proc)
            rig.install_routes()
            rig.install([InstalledModel(model_id=1, version=1, layers={0: LAYER})])
            for f in sent:
                rig.h1.send(f)
            received = rig.h2.receive_count(len(sent), timeout=20)
        assert len(received) == len(sent), "the switch forwards every DCIA packet"
        inbound = pcap_dir / f"{lab.switch_ifname(1)}_in.pcap"
        outbound = pcap_dir / f"{lab.switch_ifname(2)}_out.pcap"

    assert sorted(p.name for p in pcap_dir.iterdir()) == sorted([inbound.name, outbound.name])
    seen_in = assert_tshark_agrees_with_scapy(inbound)
    seen_out = assert_tshark_agrees_with_scapy(outbound)
    assert len(seen_in) == len(seen_out) == len(sent)

    def field(d: dict, name: str) -> int:
        return int(d["fields"][name][0][0], 0)

    # the switch computed request 1 (3 outputs, next layer 1) and flagged the malformed ones
    computed = seen_out[0]
    assert (field(computed, "dcia.n_elems"), field(computed, "dcia.next_layer"),
            field(computed, "dcia.net_layers")) == (3, 1, 1)
    assert len(computed["fields"]["dcia.elem"]) == 3
    kinds = [[e[0] for e in d["experts"]] for d in seen_out]
    assert kinds[:5] == [[]] * 5
    assert kinds[5:9] == [[k, FLAGGED] for k in ("dcia.malformed.version",
                                                 "dcia.malformed.truncated",
                                                 "dcia.malformed.too_many",
                                                 "dcia.malformed.trailing")]
    assert kinds[9] == ["dcia.malformed.short_header"]  # too short to flag
    assert {k for ks in kinds for k in ks} - {FLAGGED} == set(MALFORMATIONS)
    assert all(FLAGGED not in [e[0] for e in d["experts"]] for d in seen_in)
