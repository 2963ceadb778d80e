"""dcia-switch takes simple_switch_grpc's command line."""
import pytest

from embedded_switch.cli import parse_args, server_credentials
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
    assert (target.grpc_server_addr, target.cpu_port) == ("127.0.0.1:9559", None)
    assert not target.grpc_server_ssl and server_credentials(target) is None


def test_help_says_the_server_listens_on_loopback_only(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default 127.0.0.1:9559: loopback only" in help_text
    assert "--grpc-server-with-client-auth" in help_text


def test_bmv2_tls_options_are_taken_after_the_separator(tmp_path):
    for name in ("ca.pem", "server.pem", "server.key"):
        (tmp_path / name).write_text("not checked until the server starts")
    _, target = parse_args(["--no-p4", "--", "--grpc-server-addr", "127.0.0.1:50051",
                            "--grpc-server-ssl", "--grpc-server-cacert", str(tmp_path / "ca.pem"),
                            "--grpc-server-cert", str(tmp_path / "server.pem"),
                            "--grpc-server-key", str(tmp_path / "server.key"),
                            "--grpc-server-with-client-auth"])
    assert target.grpc_server_ssl and target.grpc_server_with_client_auth
    assert (target.grpc_server_cacert, target.grpc_server_cert, target.grpc_server_key) == (
        str(tmp_path / "ca.pem"), str(tmp_path / "server.pem"), str(tmp_path / "server.key"))


@pytest.mark.parametrize("tls", [
    ["--grpc-server-ssl", "--grpc-server-key", "k.pem"],
    ["--grpc-server-ssl", "--grpc-server-cert", "c.pem"],
    ["--grpc-server-ssl", "--grpc-server-cert", "c.pem", "--grpc-server-key", "k.pem",
     "--grpc-server-with-client-auth"],
], ids=["no-cert", "no-key", "client-auth-without-ca"])
def test_incomplete_tls_options_exit(tls, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--no-p4", "--", *tls])
    assert "needs --grpc-server-" in capsys.readouterr().err


def test_tls_files_without_ssl_are_ignored_with_a_warning(caplog):
    _, target = parse_args(["--no-p4", "--", "--grpc-server-cert", "c.pem",
                            "--grpc-server-with-client-auth"])
    assert server_credentials(target) is None
    assert "ignored" in caplog.text and "client authentication" in caplog.text


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
