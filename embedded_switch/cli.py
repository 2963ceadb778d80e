"""`dcia-switch`: the embedded switch with simple_switch_grpc's command line.

    dcia-switch -i 1@veth0 -i 2@veth2 --log-console build/dcia.json \\
        -- --grpc-server-addr 127.0.0.1:9559 --cpu-port 255

Options before `--` are BMv2's own, those after it are the target's. The P4Runtime
server (`embedded_switch.p4runtime.server.serve`) runs until SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from embedded_switch.errors import SwitchError
from embedded_switch.ports import PortSet, parse_port_spec
from embedded_switch.switch import Switch

log = logging.getLogger("embedded_switch")

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR, "off": logging.CRITICAL + 10}


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    """Split at BMv2's `--` and parse both halves."""
    if "--" in argv:
        cut = argv.index("--")
        main_argv, target_argv = argv[:cut], argv[cut + 1:]
    else:
        main_argv, target_argv = argv, []
    p = argparse.ArgumentParser(prog="dcia-switch", description="Embedded BMv2-compatible P4 switch "
                                "(options after -- are target options)")
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
    t = argparse.ArgumentParser(prog="dcia-switch ... --", description="target options")
    t.add_argument("--grpc-server-addr", default="0.0.0.0:9559")
    t.add_argument("--cpu-port", type=int, default=None)
    targs = t.parse_args(target_argv)
    return args, targs


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
                server = serve(switch, portset, targs.grpc_server_addr, device_id=args.device_id)
            except Exception as exc:  # noqa: BLE001 - e.g. the address is in use: say so, exit
                log.error("cannot start the P4Runtime server on %s: %s", targs.grpc_server_addr, exc)
                return 2
            log.info("P4Runtime server on %s (device id %d)", targs.grpc_server_addr, args.device_id)
        print("dcia-switch ready", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        log.info("shutting down")
        if server is not None:
            server.stop(grace=1).wait()
        portset.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
