"""dcia-switch takes simple_switch_grpc's command line."""
import pytest

from embedded_switch.cli import parse_args
from embedded_switch.errors import InvalidArgument
from embedded_switch.ports import parse_port_spec


def test_bmv2_style_command_line():
    args, target = parse_args(["--device-id", "1", "-i", "1@veth0", "-i", "2@veth2", "--log-file", "/tmp/s1.log",
                               "--log-level", "debug", "--pcap", "/tmp/pcaps", "--thrift-port", "9090",
                               "prog.json", "--", "--grpc-server-addr", "127.0.0.1:50051", "--cpu-port", "255"])
    assert (args.json, args.device_id, args.interface, args.pcap, args.thrift_port) == \
        ("prog.json", 1, ["1@veth0", "2@veth2"], "/tmp/pcaps", 9090)
    assert (target.grpc_server_addr, target.cpu_port) == ("127.0.0.1:50051", 255)


def test_defaults_and_no_p4():
    args, target = parse_args(["--no-p4"])
    assert args.no_p4 and args.json is None and args.log_level == "info"
    assert (target.grpc_server_addr, target.cpu_port) == ("0.0.0.0:9559", None)


@pytest.mark.parametrize("argv", [[], ["a.json", "--no-p4"], ["--log-level", "loud", "a.json"]])
def test_bad_command_lines_exit(argv):
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_port_specs():
    assert parse_port_spec("12@eth3") == (12, "eth3")
    for bad in ("eth3", "x@eth3", "3@"):
        with pytest.raises(InvalidArgument):
            parse_port_spec(bad)


def test_missing_program_or_interface_exits_with_2(tmp_path, monkeypatch):
    import logging

    from embedded_switch.cli import main
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))   # main() adds its own handlers
    monkeypatch.setattr(root, "level", root.level)
    assert main([str(tmp_path / "missing.json")]) == 2
    assert main(["--no-p4", "-i", "1@dcia-no-such-if0", "--", "--grpc-server-addr", "127.0.0.1:1"]) == 2
