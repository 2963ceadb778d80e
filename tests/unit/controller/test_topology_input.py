"""Topology input hardening: every bad value is a one-line TopologyError naming the item."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from controller.topology import check_tls_files, load_topology, parse_topology
from dcia.errors import TopologyError

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"
LINEAR = (TOPOLOGIES / "linear.toml").read_text()


def linear_with(edit: str, replacement: str) -> dict:
    assert edit in LINEAR, edit
    return tomllib.loads(LINEAR.replace(edit, replacement, 1))


def refused(data: dict, *fragments: str) -> str:
    with pytest.raises(TopologyError) as e:
        parse_topology(data, source="linear.toml")
    message = str(e.value)
    assert message.startswith("linear.toml: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_binary_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xb8\x00\xff\xfe name = 1\n")
    with pytest.raises(TopologyError, match=r"binary.toml: not a UTF-8 text file") as e:
        load_topology(path)
    assert "\n" not in str(e.value)


def test_a_deeply_nested_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(TopologyError, match="deep.toml: not valid TOML"):
        load_topology(path)


@pytest.mark.parametrize("value", ["nan", "inf", "-nan", "+inf"])
@pytest.mark.parametrize("key", ["bandwidth_mbps", "delay_ms", "loss_pct"])
def test_link_numbers_must_be_finite(key: str, value: str) -> None:
    data = tomllib.loads(LINEAR)
    data["links"][3][key] = float(value)
    refused(data, "link s3-h2", key, "finite")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", ["macs_per_s", "layer_time_s", "delay_s", "load"])
def test_capability_numbers_must_be_finite(key: str, value: str) -> None:
    data = tomllib.loads(LINEAR)
    data["hosts"]["h1"][key] = float(value)
    refused(data, "node h1", key, "finite")
    if key != "macs_per_s":
        data = tomllib.loads(LINEAR)
        data["switches"]["s2"][key] = float(value)
        refused(data, "node s2", key, "finite")


@pytest.mark.parametrize(
    ("models", "fragment"),
    [
        ('[{ model_id = "one", version = 1 }]', "model_id"),
        ("[{ model_id = 70000, version = 1 }]", "model_id"),
        ("[{ model_id = 1, version = -1 }]", "version"),
        ("[{ model_id = 1, version = 1, layers = [1.5] }]", "layers"),
        ("[{ model_id = 1, version = 1, layers = 3 }]", "layers"),
    ],
)
def test_loaded_models_must_fit_the_wire(models: str, fragment: str) -> None:
    refused(linear_with("device_id = 2\n", f"device_id = 2\nmodels = {models}\n"), "node s2", fragment)


@pytest.mark.parametrize(("key", "value"), [("operations", "5"), ("accelerator", "5")])
def test_capability_fields_of_the_wrong_type(key: str, value: str) -> None:
    refused(linear_with("device_id = 2\n", f"device_id = 2\n{key} = {value}\n"), "node s2", key)


@pytest.mark.parametrize("port", ["99999999", "512", "511", "255", "²", "٣"])
def test_switch_ports_must_fit_the_p4_port_width(port: str) -> None:
    refused(linear_with('endpoints = ["s2:2", "s3:1"]', f'endpoints = ["s2:{port}", "s3:1"]'),
            "link s2-s3", "s2")


def test_the_largest_usable_switch_port() -> None:
    topo = parse_topology(linear_with('endpoints = ["s2:2", "s3:1"]', 'endpoints = ["s2:510", "s3:254"]'))
    assert topo.port("s2", "s3") == 510 and topo.port("s3", "s2") == 254


def test_a_huge_host_interface_index() -> None:
    refused(linear_with('endpoints = ["h1", "s1:1"]', 'endpoints = ["h1:99999999", "s1:1"]'),
            "host h1 has 1 interface(s)")


@pytest.mark.parametrize(
    "other",
    ["localhost:50001", "LOCALHOST:50001", "[::1]:50001", "127.0.0.1:050001", "localhost.:50001",
     "[::ffff:127.0.0.1]:50001", "[0:0:0:0:0:0:0:1]:50001"],
)
def test_two_switches_at_one_p4runtime_address(other: str) -> None:
    refused(linear_with('grpc = "127.0.0.1:50002"', f'grpc = "{other}"'),
            "switches s1 and s2 share P4Runtime address")


def test_the_same_ipv6_address_written_two_ways() -> None:
    data = linear_with('grpc = "127.0.0.1:50001"', 'grpc = "[fd00::1]:50001"')
    data["switches"]["s2"]["grpc"] = "[fd00:0::0001]:50001"
    refused(data, "switches s1 and s2 share P4Runtime address")


def test_different_loopback_addresses_and_ports_are_distinct() -> None:
    data = linear_with('grpc = "127.0.0.1:50002"', 'grpc = "127.0.0.2:50001"')
    data["switches"]["s3"]["grpc"] = "localhost:50003"
    assert parse_topology(data).switches["s2"].grpc == "127.0.0.2:50001"


@pytest.mark.parametrize("grpc", ["127.0.0.1:5²", "::1:50001", "[::1:50001", "host:0", "a b:1", ":50001"])
def test_malformed_p4runtime_addresses(grpc: str) -> None:
    refused(linear_with('grpc = "127.0.0.1:50002"', f'grpc = "{grpc}"'), "switch s2: grpc")


@pytest.mark.parametrize(("key", "value"), [("ip", "5"), ("gateway", "5"), ("mac", "5")])
def test_addresses_must_be_strings(key: str, value: str) -> None:
    line = {"ip": 'ip = "10.0.1.1/24"', "gateway": 'gateway = "10.0.1.10"',
            "mac": 'mac = "08:00:00:00:01:11"'}[key]
    refused(linear_with(line, f"{key} = {value}"), "host h1 interface 0")


@pytest.mark.parametrize("tls", ['{ ca = 5 }', '{ ca = "" }', '{ ca = "ca.pem", cert = "c.pem", key = 7 }'])
def test_tls_paths_must_be_strings(tls: str) -> None:
    refused(linear_with("device_id = 2\n", f"device_id = 2\ntls = {tls}\n"), "switch s2: tls")


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("ca")
    (tmp_path / "s2.pem").write_text("cert")
    path = tmp_path / "tls.toml"
    path.write_text(LINEAR.replace(
        "device_id = 2\n", 'device_id = 2\ntls = { ca = "ca.pem", cert = "s2.pem", key = "s2.key" }\n'))
    topo = load_topology(path)
    with pytest.raises(TopologyError, match=r"switch s2: tls key file .*s2.key does not exist") as e:
        check_tls_files(topo)
    assert "\n" not in str(e.value)
    (tmp_path / "s2.key").mkdir()
    with pytest.raises(TopologyError, match=r"switch s2: tls key .*s2.key is not a file"):
        check_tls_files(topo)
    (tmp_path / "s2.key").rmdir()
    (tmp_path / "s2.key").write_text("key")
    check_tls_files(topo)


def test_a_host_names_its_metric_agent() -> None:
    data = tomllib.loads(LINEAR)
    data["hosts"]["h2"]["metrics"] = "127.0.0.1:9101"
    topology = parse_topology(data)
    assert topology.hosts["h2"].metrics == "127.0.0.1:9101" and topology.hosts["h1"].metrics is None
    for bad in ("9101", "127.0.0.1:0", 9101, "host name:9101"):
        data["hosts"]["h2"]["metrics"] = bad
        refused(data, "host h2: metrics must be the address of its metric agent")
