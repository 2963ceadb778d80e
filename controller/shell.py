"""``dcia shell``: p4runtime-shell connected to one switch of a topology.

p4runtime-shell (https://github.com/p4lang/p4runtime-shell, PyPI ``p4runtime-shell``)
pins protobuf below 3.21 and p4runtime 1.4.1, which cannot live beside the project's
protobuf 6, so it has a virtual environment of its own, ``.venv-p4rt-shell`` (made by
scripts/bootstrap.sh; ``$P4RT_SHELL_VENV`` names another). ``dcia shell`` takes the
switch's address, device id and TLS files from the topology and replaces itself with that
environment's Python running p4runtime-shell:

    dcia shell s1                                    # topologies/linear.toml's s1, interactive
    dcia shell s2 --grpc 127.0.0.1:50102             # another address, s2's device id
    dcia shell s1 --command 'print(len(list(table_entry["DciaIngress.layers"].read())))'
    dcia shell s1 < script.py                        # stdin that is no terminal: run it
    dcia shell s1 --config                           # push the DCIA pipeline first

Without ``--config`` nothing is pushed: the shell reads the P4Info from the switch, so a
running deployment is left as it is. ``--config`` pushes p4src/build/ (VERIFY_AND_COMMIT:
the switch's tables are cleared).

The shell arbitrates with the controller's election id (controller.deployment), so it may
write also on the embedded switch, whose primary must hold the highest election id the
switch has ever accepted; while it is open, ``dcia deploy`` and ``dcia status`` on that
switch are refused (the id is taken). ``--election-id 0,9`` gives a shell that steps
aside for the controller.

    >>> ShellSession("127.0.0.1:50001", device_id=2, election_id=10).arguments()
    ['--grpc-addr', '127.0.0.1:50001', '--device-id', '2', '--election-id', '0,10']
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from controller.deployment import SwitchEndpoint
from controller.pki import add_tls_argument, apply_tls_argument
from controller.topology import Tls, check_tls_files, load_topology
from dcia.artifacts import REPO, Pipeline
from dcia.errors import DciaError

log = logging.getLogger(__name__)

DEFAULT_TOPOLOGY = REPO / "topologies" / "linear.toml"
VENV_VARIABLE = "P4RT_SHELL_VENV"
STAMP = ".dcia-installed"
"""Written by scripts/bootstrap.sh once the pinned packages are installed."""

RUNNER = """\
import sys
from IPython.core.interactiveshell import InteractiveShell
from p4runtime_sh import shell

code = sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1]
del sys.argv[1]
results = []

def run_code(user_ns, config, argv):
    terminal = config.TerminalInteractiveShell
    ipython = InteractiveShell.instance(
        user_ns=user_ns, config=config, colors="NoColor", ast_node_interactivity="all",
        autocall=terminal.autocall, show_rewritten_input=terminal.show_rewritten_input)
    results.append(ipython.run_cell(code).success)

shell.start_ipython = run_code
shell.main()
sys.exit(0 if all(results) else 1)
"""
"""p4runtime-shell's own main (connection, arbitration, its names) with one IPython cell
in place of the interactive prompt: the code given, or stdin when it is ``-``; exit
status 1 when the code raised."""


@dataclass(frozen=True)
class ShellSession:
    """What p4runtime-shell connects to, and how."""

    grpc_addr: str
    device_id: int
    election_id: int
    config: Pipeline | None = None
    """A pipeline to push first (p4runtime-shell's ``--config``); None: push nothing."""
    tls: Tls | None = None

    def arguments(self) -> list[str]:
        """p4runtime-shell's command-line arguments."""
        args = ["--grpc-addr", self.grpc_addr, "--device-id", str(self.device_id),
                "--election-id", f"{self.election_id >> 64},{self.election_id & (2**64 - 1)}"]
        if self.config is not None:
            args += ["--config", f"{self.config.p4info},{self.config.bmv2_json}"]
        if self.tls is not None:
            args += ["--ssl", "--cacert", str(self.tls.ca)]
            if self.tls.cert is not None:
                args += ["--cert", str(self.tls.cert), "--private-key", str(self.tls.key)]
        return args

    def argv(self, python: Path, code: str | None = None) -> list[str]:
        """The command: interactive p4runtime-shell, or one run of ``code`` ('-': stdin)."""
        if code is None:
            return [str(python), "-m", "p4runtime_sh", *self.arguments()]
        return [str(python), "-c", RUNNER, code, *self.arguments()]


def shell_venv() -> Path:
    """The virtual environment of p4runtime-shell: ``$P4RT_SHELL_VENV`` or .venv-p4rt-shell."""
    return Path(os.environ.get(VENV_VARIABLE) or REPO / ".venv-p4rt-shell")


def shell_python(venv: Path | None = None) -> Path:
    """The Python of p4runtime-shell's environment; DciaError when it is not installed."""
    venv = venv or shell_venv()
    python = venv / "bin" / "python"
    if not (venv / STAMP).is_file() or not os.access(python, os.X_OK):
        raise DciaError(f"p4runtime-shell is not installed in {venv}: run `make setup`")
    return python


def _election_id(text: str) -> int:
    """An argparse type: an election id as p4runtime-shell writes it (HIGH,LOW) or one integer."""
    try:
        parts = [int(p, 0) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1 and 0 < parts[0] < 2**128:
        return parts[0]
    if len(parts) == 2 and all(0 <= p < 2**64 for p in parts) and any(parts):
        return (parts[0] << 64) | parts[1]
    raise argparse.ArgumentTypeError(f"{text!r} is not an election id: HIGH,LOW or one "
                                     "integer, greater than 0")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("switch", help="the switch's name in the topology (s1)")
    parser.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY,
                        help="topology TOML file (default: topologies/linear.toml)")
    parser.add_argument("--grpc", metavar="ADDR",
                        help="P4Runtime address host:port instead of the topology's")
    parser.add_argument("--device-id", type=int, help="device id instead of the topology's")
    add_tls_argument(parser)
    parser.add_argument("--election-id", type=_election_id, default=SwitchEndpoint.election_id,
                        metavar="HIGH,LOW",
                        help=f"election id (default: the controller's, {SwitchEndpoint.election_id})")
    parser.add_argument("--config", action="store_true",
                        help="push the DCIA pipeline (p4src/build/) first: replaces what runs on "
                             "the switch and clears its tables")
    parser.add_argument("--command", metavar="CODE",
                        help="run CODE in the shell and exit (status 1 if it raised); '-' or "
                             "stdin that is no terminal: the code read from stdin")


def run(args: argparse.Namespace, console: Console) -> int:
    python = shell_python()
    topology = apply_tls_argument(load_topology(args.topology), args.tls)
    switch = topology.switches.get(args.switch)
    if switch is None:
        raise DciaError(f"topology {topology.name} has no switch {args.switch} (it has "
                        f"{', '.join(sorted(topology.switches)) or 'none'})")
    check_tls_files(topology)
    session = ShellSession(
        grpc_addr=args.grpc or switch.grpc,
        device_id=switch.device_id if args.device_id is None else args.device_id,
        election_id=args.election_id,
        config=Pipeline.default() if args.config else None,
        tls=switch.tls,
    )
    _check_reachable(switch.name, session.grpc_addr)
    code = args.command
    if code is None and not sys.stdin.isatty():
        code = "-"
    argv = session.argv(python, code)
    log.info("running %s", " ".join(argv[:2] + argv[3:] if code is not None else argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def _check_reachable(name: str, address: str, timeout: float = 3.0) -> None:
    """One line instead of p4runtime-shell's log when nothing listens at ``address``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise DciaError(f"switch {name}: no P4Runtime server at {address} ({reason}); is the "
                        "switch running?") from None
