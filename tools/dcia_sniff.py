#!/usr/bin/env python3
"""Decode DCIA packets on an interface or in a pcap file; flag the malformed ones.

Every UDP packet to port 56346 is decoded with the project's scapy layer
(dcia.wire.DCIA) and printed on one line: addresses, model, next layer, layers the
network computed, request id, flags, the first elements. Packets that a switch would call
malformed (dcia.wire.malformation) or that carry the MALFORMED flag are marked ``!!``.

    tools/dcia_sniff.py -i s1-eth2                 # live, until Ctrl-C (needs root)
    tools/dcia_sniff.py -r logs/run/pcap/s2-eth1_in.pcap --json
"""

from __future__ import annotations

import argparse
import json
import sys

from scapy.layers.inet import IP
from scapy.packet import Packet
from scapy.sendrecv import sniff
from scapy.utils import PcapReader

from dcia.wire import DCIA, DCIA_UDP_PORT, Flag, malformation


def describe(pkt: Packet) -> dict | None:
    """One DCIA packet as a dict (None for anything else)."""
    if DCIA not in pkt:
        return None
    d = pkt[DCIA]
    problem = malformation(d)
    if problem is None and int(d.flags) & Flag.MALFORMED:
        problem = "flagged MALFORMED by a switch"
    return {
        "src": pkt[IP].src if IP in pkt else None,
        "dst": pkt[IP].dst if IP in pkt else None,
        "ver": d.ver,
        "flags": [f.name for f in Flag if int(d.flags) & f],
        "model_id": d.model_id,
        "model_version": d.model_version,
        "next_layer": d.next_layer,
        "net_layers": d.net_layers,
        "request_id": d.request_id,
        "n_elems": d.n_elems,
        "status": d.status,
        "elems": list(d.elems),
        "malformed": problem,
    }


def line(info: dict) -> str:
    flags = "|".join(info["flags"]) or "-"
    head = ", ".join(str(v) for v in info["elems"][:8]) + (", …" if len(info["elems"]) > 8 else "")
    mark = f"  !! MALFORMED: {info['malformed']}" if info["malformed"] else ""
    return (f"{info['src']} > {info['dst']} model {info['model_id']} v{info['model_version']} "
            f"next {info['next_layer']} net {info['net_layers']} req {info['request_id']} "
            f"[{flags}] status {info['status']} n={info['n_elems']} [{head}]{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-i", "--interface", help="sniff this interface")
    source.add_argument("-r", "--read", metavar="PCAP", help="read this pcap file")
    parser.add_argument("-c", "--count", type=int, default=0, help="stop after N DCIA packets")
    parser.add_argument("--timeout", type=float, help="stop sniffing after this many seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)

    seen = {"packets": 0, "malformed": 0}

    def show(pkt: Packet) -> None:
        info = describe(pkt)
        if info is None:
            return
        seen["packets"] += 1
        seen["malformed"] += bool(info["malformed"])
        print(json.dumps(info) if args.json else line(info), flush=True)

    def done(_pkt: Packet) -> bool:
        return bool(args.count) and seen["packets"] >= args.count

    if args.read:
        with PcapReader(args.read) as reader:
            for pkt in reader:
                show(pkt)
                if done(pkt):
                    break
    else:
        sniff(iface=args.interface, filter=f"udp dst port {DCIA_UDP_PORT}", prn=show,
              stop_filter=done, timeout=args.timeout, store=False)
    print(f"{seen['packets']} DCIA packet(s), {seen['malformed']} malformed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
