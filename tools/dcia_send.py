#!/usr/bin/env python3
"""Send one DCIA tensor packet and print the answer: a probe for the testbed.

Run it in a Mininet host (``h1 .venv/bin/python tools/dcia_send.py --dst 10.0.2.2 ...``
at the `make cli` prompt). The packet is built with the project's scapy layer
(dcia.wire.DCIA) and sent over UDP to port 56346; the answer (RESULT or ERROR) is decoded
with the same layer and shown field by field.

    # the tensor layer 1 of the demo model takes, from test image 7 (files of `make run`)
    tools/dcia_send.py --dst 10.0.2.2 --model logs/run/model.json \\
        --inputs logs/run/inputs.npy --index 7 --edge-layers 1
    # a hand-made tensor, and a malformed one (version 2: the cloud answers ERROR status 1)
    tools/dcia_send.py --dst 10.0.2.2 --next-layer 1 --elems 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16
    tools/dcia_send.py --dst 10.0.2.2 --ver 2 --elems 1,2
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time

from dcia.wire import DCIA, DCIA_UDP_PORT, Flag, malformation


def build(args: argparse.Namespace) -> DCIA:
    """The DCIA layer to send, from the command line."""
    model_id, version, next_layer = args.model_id, args.version, args.next_layer
    if args.model:
        import numpy as np

        from dcia.model import QuantizedModel

        model = QuantizedModel.load(args.model)
        if args.inputs is None:
            raise SystemExit("--model needs --inputs (a .npy file of float inputs) and --index")
        x = model.quantize_input(np.load(args.inputs)[args.index: args.index + 1])[0]
        elems = model.forward_int(np.asarray(x, dtype=np.int64), 0, args.edge_layers).tolist()
        model_id, version, next_layer = model.model_id, model.version, args.edge_layers
    elif args.elems:
        elems = [int(v) for v in args.elems.split(",")]
    else:
        elems = [random.randint(-128, 127) for _ in range(args.random)]
    pkt = DCIA(ver=args.ver, flags=args.flags, model_id=model_id, model_version=version,
               next_layer=next_layer, request_id=args.request_id or random.getrandbits(32),
               elems=elems)
    if args.n_elems is not None:  # claim another count than the tensor has: malformed
        pkt.n_elems = args.n_elems
    return pkt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dst", required=True, help="IPv4 address of the cloud server")
    parser.add_argument("--port", type=int, default=DCIA_UDP_PORT, help="its UDP port")
    parser.add_argument("--sport", type=int, default=DCIA_UDP_PORT, help="UDP port to send from")
    what = parser.add_argument_group("the tensor")
    what.add_argument("--model", help="quantized model file: compute the edge's layers of an input")
    what.add_argument("--inputs", help=".npy file of float inputs (with --model)")
    what.add_argument("--index", type=int, default=0, help="which input (with --model)")
    what.add_argument("--edge-layers", type=int, default=1, help="layers to compute first (with --model)")
    what.add_argument("--elems", help="comma-separated int8 elements")
    what.add_argument("--random", type=int, default=16, metavar="N", help="N random elements (default)")
    header = parser.add_argument_group("the header")
    header.add_argument("--model-id", type=int, default=1)
    header.add_argument("--version", type=int, default=1)
    header.add_argument("--next-layer", type=int, default=1)
    header.add_argument("--request-id", type=int, help="default: random")
    header.add_argument("--flags", type=int, default=0,
                        help=f"header flags ({', '.join(f'{f.name}={f.value}' for f in Flag)})")
    header.add_argument("--ver", type=int, default=1, help="protocol version (not 1: malformed)")
    header.add_argument("--n-elems", type=int, help="override the element count (malformed)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)

    pkt = build(args)
    print("sent:")
    pkt.show2()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", args.sport))
        sock.settimeout(args.timeout)
        started = time.perf_counter()
        sock.sendto(bytes(pkt), (args.dst, args.port))
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except TimeoutError:
                print(f"no answer from {args.dst} within {args.timeout} s", file=sys.stderr)
                return 1
            answer = DCIA(data)
            if answer.request_id == pkt.request_id and int(answer.flags) & (Flag.RESULT | Flag.ERROR):
                break
    elapsed = time.perf_counter() - started
    print(f"answer from {source[0]} after {elapsed * 1e3:.2f} ms:")
    answer.show()
    problem = malformation(answer)
    if problem:
        print(f"the answer is malformed: {problem}", file=sys.stderr)
    if int(answer.flags) & Flag.RESULT and answer.elems:
        print(f"class {max(range(len(answer.elems)), key=answer.elems.__getitem__)} "
              f"(switches computed {answer.net_layers} layer(s))")
    return 0 if int(answer.flags) & Flag.RESULT else 2


if __name__ == "__main__":
    sys.exit(main())
