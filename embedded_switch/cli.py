"""`dcia-switch`: the embedded switch with simple_switch_grpc's command line.

    dcia-switch -i 1@veth0 -i 2@veth2 --log-console build/dcia.json \\
        -- --grpc-server-addr 127.0.0.1:9559 --cpu-port 255

Options before `--` are BMv2's own, those after it are the target's, TLS included
(`--grpc-server-ssl --grpc-server-cert PEM --grpc-server-key PEM`, and for mutual TLS
`--grpc-server-cacert PEM --grpc-server-with-client-auth`). Unlike BMv2, the P4Runtime
server listens on loopback only unless `--grpc-server-addr` names another address.
The server (`embedded_switch.p4runtime.server.serve`) runs until SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import grpc

from embedded_switch.errors import SwitchError
from embedded_switch.ports import PortSet, parse_port_spec
from embedded_switch.switch import Switch

log = logging.getLogger("embedded_switch")

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR, "off": logging.CRITICAL + 10}


#: Where the P4Runtime server listens without --grpc-server-addr: loopback only (BMv2
#: listens on 0.0.0.0:9559, every address).
DEFAULT_GRPC_ADDR = "127.0.0.1:9559"


def _target_parser() -> argparse.ArgumentParser:
    """simple_switch_grpc's target options (after `--`)."""
    t = argparse.ArgumentParser(prog="dcia-switch ... --", description="target options",
                                add_help=True)
    t.add_argument("--grpc-server-addr", default=DEFAULT_GRPC_ADDR, metavar="HOST:PORT",
                   help=f"P4Runtime server address (default {DEFAULT_GRPC_ADDR}: loopback only, "
                        "unlike BMv2's 0.0.0.0:9559; give 0.0.0.0:PORT for every address)")
    t.add_argument("--cpu-port", type=int, default=None, help="port number of the CPU port")
    t.add_argument("--grpc-server-ssl", action="store_true", help="serve P4Runtime over TLS")
    t.add_argument("--grpc-server-cert", metavar="PEM", help="server certificate (with --grpc-server-ssl)")
    t.add_argument("--grpc-server-key", metavar="PEM", help="server private key (with --grpc-server-ssl)")
    t.add_argument("--grpc-server-cacert", metavar="PEM",
                   help="CA certificate that client certificates are verified against")
    t.add_argument("--grpc-server-with-client-auth", action="store_true",
                   help="require a client certificate signed by --grpc-server-cacert (mutual TLS)")
    return t


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    """Split at BMv2's `--` and parse both halves."""
    if "--" in argv:
        cut = argv.index("--")
        main_argv, target_argv = argv[:cut], argv[cut + 1:]
    else:
        main_argv, target_argv = argv, []
    t = _target_parser()
    p = argparse.ArgumentParser(prog="dcia-switch", description="Embedded BMv2-compatible P4 switch "
                                "(options after -- are target options)",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=t.format_help())
    p.add_argument("json", nargs="?", help="BMv2 JSON of the P4 program")
    p.add_argument("--no-p4", action="store_true", help="start without a program (load it over P4Runtime)")
    p.add_argument("-i", "--interface", action="append", default=[], metavar="N@IFNAME",
                   help="attach interface IFNAME as port N (repeatable)")
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--log-console", action="store_true", help="log to the console")
    p.add_argument("--log-file", metavar="PATH", help="log to this file")
    p.add_argument("-L", "--log-level", choices=sorted(LEVELS), default="info")
    p.add_argument("--log-flush", action="store_true", help="accepted for compatibility")
    p.add_argument("--thrift-port", type=int, help="accepted and ignored (no Thrift server)")
    p.add_argument("--nanolog", metavar="ADDR", help="accepted and ignored")
    p.add_argument("--pcap", metavar="DIR", nargs="?", const=".", help="write per-port pcaps into DIR")
    args = p.parse_args(main_argv)
    if args.json and args.no_p4:
        p.error("give a JSON file or --no-p4, not both")
    if not args.json and not args.no_p4:
        p.error("give a JSON file or --no-p4")
    targs = t.parse_args(target_argv)
    if targs.grpc_server_ssl:
        for option in ("cert", "key"):
            if not getattr(targs, f"grpc_server_{option}"):
                t.error(f"--grpc-server-ssl needs --grpc-server-{option}")
        if targs.grpc_server_with_client_auth and not targs.grpc_server_cacert:
            t.error("--grpc-server-with-client-auth needs --grpc-server-cacert "
                    "to verify client certificates against")
    return args, targs


def server_credentials(targs: argparse.Namespace) -> grpc.ServerCredentials | None:
    """TLS credentials from the target options, None without --grpc-server-ssl (as BMv2,
    PEM files and client authentication are then ignored, with a warning)."""
    if not targs.grpc_server_ssl:
        if targs.grpc_server_cert or targs.grpc_server_key or targs.grpc_server_cacert:
            log.warning("TLS is disabled for the gRPC server (no --grpc-server-ssl), "
                        "so the PEM files given are ignored")
        if targs.grpc_server_with_client_auth:
            log.warning("TLS is disabled for the gRPC server (no --grpc-server-ssl), "
                        "so client authentication cannot be requested")
        return None

    def pem(path: str | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return grpc.ssl_server_credentials(
        [(pem(targs.grpc_server_key), pem(targs.grpc_server_cert))],
        root_certificates=pem(targs.grpc_server_cacert),
        require_client_auth=targs.grpc_server_with_client_auth,
    )


def _setup_logging(args: argparse.Namespace) -> None:
    level = LEVELS[args.log_level]
    handlers: list[logging.Handler] = []
    if args.log_console:
        handlers.append(logging.StreamHandler(sys.stderr))
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    if not handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
        level = max(level, logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    args, targs = parse_args(sys.argv[1:] if argv is None else argv)
    _setup_logging(args)
    if args.thrift_port is not None:
        log.info("--thrift-port %d ignored: the embedded switch has no Thrift server", args.thrift_port)
    try:
        ports = dict(parse_port_spec(s) for s in args.interface)
    except SwitchError as exc:
        log.error("%s", exc)
        return 2
    try:
        credentials = server_credentials(targs)
    except OSError as exc:
        log.error("cannot read the TLS files: %s", exc)
        return 2
    switch = Switch(device_id=args.device_id, cpu_port=targs.cpu_port, log=logging.getLogger("embedded_switch.switch"))
    if args.json:
        try:
            with open(args.json, "rb") as f:
                switch.load_pipeline(f.read())
        except (OSError, SwitchError) as exc:
            log.error("cannot load %s: %s", args.json, exc)
            return 2
    if args.pcap:
        os.makedirs(args.pcap, exist_ok=True)
    portset = PortSet(switch, ports, pcap_dir=args.pcap)
    try:
        portset.start()
    except OSError as exc:
        log.error("cannot open ports: %s", exc)
        portset.stop()
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        try:
            from embedded_switch.p4runtime.server import serve
        except ImportError as exc:
            log.error("P4Runtime server unavailable (%s); forwarding without a control plane", exc)
        else:
            try:
                server = serve(switch, portset, targs.grpc_server_addr, device_id=args.device_id,
                               credentials=credentials)
            except Exception as exc:  # noqa: BLE001 - e.g. the address is in use: say so, exit
                log.error("cannot start the P4Runtime server on %s: %s", targs.grpc_server_addr, exc)
                return 2
            log.info("P4Runtime server on %s%s (device id %d)", targs.grpc_server_addr,
                     " over TLS" if credentials else "", args.device_id)
        print("dcia-switch ready", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        log.info("shutting down")
        if server is not None:
            server.stop(grace=1)
        portset.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
