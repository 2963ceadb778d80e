"""The DCIA program (p4src/build/dcia.json) in process: layers computed bit for bit as
dcia.arithmetic defines them, recirculation across layers, and pass-through."""
import random
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dcia.arithmetic import Activation
from dcia.layers import DenseLayer
from dcia.wire import DCIA, tensor_packet
from embedded_switch.match import Exact, Lpm
from embedded_switch.switch import Switch

DCIA_JSON = Path(__file__).resolve().parents[2] / "p4src/build/dcia.json"
I = "DciaIngress."
MODEL, VERSION = 7, 1


@pytest.fixture
def sw():
    s = Switch()
    s.load_pipeline(DCIA_JSON.read_bytes())
    s.table_add(I + "ipv4_lpm", [Lpm(0x0A000200, 24)], I + "ipv4_forward", [0x080000000222, 2])
    return s


def random_dense(rng: random.Random, n_in: int, n_out: int, act: Activation) -> DenseLayer:
    return DenseLayer(weights=[[rng.randint(-128, 127) for _ in range(n_in)] for _ in range(n_out)],
                      bias=[rng.randint(-40000, 40000) for _ in range(n_out)],
                      mult=[rng.randint(1, 1 << 15) for _ in range(n_out)],
                      shift=[rng.randint(0, 24) for _ in range(n_out)], act=act)


def install(sw: Switch, layer_index: int, layer: DenseLayer, more: bool) -> None:
    key = [Exact(MODEL), Exact(VERSION), Exact(layer_index)]
    sw.table_add(I + "layers", key, I + "dense_layer", [layer.n_in, layer.n_out, int(layer.act), int(more)])
    for j, row in enumerate(layer.weights):
        packed = bytes(v & 0xFF for v in row).ljust(16, b"\x00")
        sw.table_add(I + f"dense_{j}", key, I + f"dense_neuron_{j}",
                     [int.from_bytes(packed, "big"), layer.bias[j] & 0xFFFFFFFF, layer.mult[j], layer.shift[j]])


def send(sw: Switch, x: list[int], next_layer: int = 0) -> DCIA:
    frame = tensor_packet(src_mac="08:00:00:00:01:11", dst_mac="08:00:00:00:01:00", src_ip="10.0.1.1",
                          dst_ip="10.0.2.2", model_id=MODEL, model_version=VERSION, request_id=9, elems=x,
                          next_layer=next_layer)
    [(port, data)] = sw.process(1, bytes(frame))
    pkt = Ether(data)
    assert port == 2
    ip = pkt[IP]
    fixed = IP(bytes(ip))
    del fixed.chksum
    assert ip.chksum == IP(bytes(fixed)).chksum and ip.ttl == 63
    assert ip.len == len(bytes(ip))
    assert pkt[UDP].len == len(bytes(pkt[UDP]))
    return pkt[DCIA]


def test_dense_16x16_relu_is_bit_exact(sw):
    rng = random.Random(2)
    layer = random_dense(rng, 16, 16, Activation.RELU)
    install(sw, 0, layer, more=False)
    for _ in range(60):
        x = [rng.randint(-128, 127) for _ in range(16)]
        out = send(sw, x)
        assert list(out.elems) == layer.forward(x)
        assert (out.next_layer, out.net_layers, out.n_elems) == (1, 1, 16)


def test_shrinking_layer_then_recirculation_to_the_next(sw):
    rng = random.Random(3)
    first = random_dense(rng, 16, 8, Activation.IDENTITY)
    second = random_dense(rng, 8, 4, Activation.RELU)
    install(sw, 0, first, more=True)
    install(sw, 1, second, more=False)
    for _ in range(20):
        x = [rng.randint(-128, 127) for _ in range(16)]
        out = send(sw, x)
        assert list(out.elems) == second.forward(first.forward(x))
        assert (out.next_layer, out.net_layers, out.n_elems) == (2, 2, 4)


def test_without_state_the_tensor_passes_unchanged(sw):
    x = list(range(-8, 8))
    out = send(sw, x, next_layer=3)
    assert list(out.elems) == x and out.next_layer == 3
    assert sw.counter_read(I + "dcia_stats", 1)[0] == 1
