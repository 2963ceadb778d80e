"""Faults to inject into a testbed run, and what they cost: parse, check, schedule, measure.

A fault names what fails and when, in seconds after the inference starts (the first
request's send), and optionally when it comes back:

    h2@3s              the cloud server of cloud host h2 is killed (SIGKILL) at 3 s
    s1@3s-6s           switch s1's process is killed at 3 s and started again at 6 s
                       (its pipeline, routes and layers are put back)
    link:s1-s2@2.5s-4s the link between s1 and s2 goes down (both ends) at 2.5 s, up at 4 s
    h2@500ms-1500ms    times in s or ms

    >>> Fault.parse("link:s1-s2@3s-6s")
    Fault(target='link:s1-s2', at=3.0, until=6.0)

``check`` refuses a fault the topology cannot have (an unknown node or link, the edge
host, whose agent would have nothing to fail over to) and times outside the run. The
``Schedule`` runs the failures and recoveries at their times against anything with
``fail(target)`` and ``restore(target)`` (mininet_topos.testbed.Testbed), and ``measure``
turns the requests' results into the failover time (fault to the first answer from a cloud
the fault did not cut off) and the recovery time (node back to its first answer again).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controller.topology import Topology
from dcia.capability import NodeKind
from dcia.errors import DciaError
from hosts.edge_agent import RequestResult

log = logging.getLogger(__name__)

_SPEC = re.compile(r"^(?P<target>[^@\s]+)@(?P<at>[0-9.]+(?:ms|s)?)(?:-(?P<until>[0-9.]+(?:ms|s)?))?$")


class FaultError(DciaError):
    """A fault that cannot be injected: bad syntax, an unknown node or link, a bad time."""


def _seconds(text: str, spec: str) -> float:
    scale = 1e-3 if text.endswith("ms") else 1.0
    try:
        return float(text.removesuffix("ms").removesuffix("s")) * scale
    except ValueError:
        raise FaultError(f"--fail {spec}: {text!r} is not a time (3s, 2.5s, 500ms)") from None


@dataclass(frozen=True)
class Fault:
    """``target`` (a node name or ``link:A-B``) fails ``at`` s after the inference starts
    and comes back at ``until`` (None: it stays down)."""

    target: str
    at: float
    until: float | None = None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        match = _SPEC.match(spec.strip())
        if match is None:
            raise FaultError(f"--fail {spec}: expected NODE@TIME, NODE@TIME-TIME or "
                             "link:A-B@TIME[-TIME] (for example h2@3s, s1@3s-6s, link:s1-s2@3s)")
        at = _seconds(match["at"], spec)
        until = _seconds(match["until"], spec) if match["until"] else None
        if until is not None and until <= at:
            raise FaultError(f"--fail {spec}: it must come back after it fails ({until:g} s "
                             f"is not after {at:g} s)")
        return cls(match["target"], at, until)

    def __str__(self) -> str:
        back = f"-{self.until:g}s" if self.until is not None else ""
        return f"{self.target}@{self.at:g}s{back}"

    @property
    def link(self) -> tuple[str, str] | None:
        """The two ends of a link fault, else None."""
        if not self.target.startswith("link:"):
            return None
        a, _, b = self.target.removeprefix("link:").partition("-")
        return a, b

    def kind(self, topology: Topology) -> str:
        """``cloud``, ``switch`` or ``link``."""
        if self.link:
            return "link"
        return "switch" if self.target in topology.switches else "cloud"

    def check(self, topology: Topology, duration: float | None) -> None:
        """Raise FaultError unless ``topology`` can have this fault within a run of
        ``duration`` seconds (None: unknown, not checked)."""
        if self.link:
            a, b = self.link
            if not a or not b or not any(link.joins(a, b) for link in topology.links):
                links = ", ".join(f"link:{l.a.node}-{l.b.node}" for l in topology.links)
                raise FaultError(f"--fail {self}: topology {topology.name} has no link "
                                 f"{a}-{b} (links: {links})")
        elif self.target in topology.hosts:
            if topology.hosts[self.target].capability.kind is not NodeKind.CLOUD:
                raise FaultError(f"--fail {self}: {self.target} is the edge host; only cloud "
                                 "servers, switches and links can fail")
        elif self.target not in topology.switches:
            raise FaultError(f"--fail {self}: topology {topology.name} has no node "
                             f"{self.target} (nodes: {', '.join(topology.node_names)})")
        if duration is not None:
            last = self.until if self.until is not None else self.at
            if last >= duration:
                raise FaultError(f"--fail {self}: the run lasts about {duration:g} s "
                                 "(--requests / --rate); fail and recover within it")

    def cut_paths(self, topology: Topology) -> list[str]:
        """The paths of ``topology`` this fault interrupts."""
        cut = []
        for name, hops in topology.paths.items():
            if self.link:
                a, b = self.link
                if any({u, v} == {a, b} for u, v in zip(hops, hops[1:])):
                    cut.append(name)
            elif self.target in hops:
                cut.append(name)
        return cut


def check_all(faults: Sequence[Fault], topology: Topology, duration: float | None) -> None:
    """Check each fault, and that no target fails twice at overlapping times."""
    for fault in faults:
        fault.check(topology, duration)
    by_target: dict[str, list[Fault]] = {}
    for fault in faults:
        by_target.setdefault(fault.target, []).append(fault)
    for target, same in by_target.items():
        same.sort(key=lambda f: f.at)
        for first, second in zip(same, same[1:]):
            if first.until is None or first.until > second.at:
                raise FaultError(f"--fail {first} and --fail {second}: {target} would fail "
                                 "again while it is down")


class Injector(Protocol):
    def fail(self, target: str) -> None: ...
    def restore(self, target: str) -> None: ...


@dataclass
class Injected:
    """One fault as it happened: wall-clock times (``time.time()``)."""

    fault: Fault
    failed_at: float | None = None
    restoring_at: float | None = None
    """When bringing it back began."""
    restored_at: float | None = None
    """When it was back (a switch: running, with its routes and layers again)."""


@dataclass
class Schedule:
    """The faults' failures and recoveries in time order, run by ``run_due``."""

    faults: Sequence[Fault]
    injected: list[Injected] = field(default_factory=list)
    start: float | None = None
    """Wall-clock time zero: the inference's start (``begin``)."""
    _actions: list[tuple[float, str, Injected]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.injected = [Injected(f) for f in self.faults]
        for record in self.injected:
            self._actions.append((record.fault.at, "fail", record))
            if record.fault.until is not None:
                self._actions.append((record.fault.until, "restore", record))
        self._actions.sort(key=lambda a: (a[0], a[1] != "restore"))

    def begin(self, start: float) -> None:
        if self.start is None:
            self.start = start

    def next_in(self) -> float | None:
        """Seconds until the next action (0 when due), None when none is left or not begun."""
        if self.start is None or not self._actions:
            return None
        return max(0.0, self.start + self._actions[0][0] - time.time())

    def run_due(self, injector: Injector) -> None:
        """Run every action whose time has come (in this thread: processes a testbed
        starts from here live as long as the thread)."""
        while self.start is not None and self._actions and self.next_in() == 0:
            _, action, record = self._actions.pop(0)
            if action == "fail":
                record.failed_at = time.time()
                log.warning("fault: %s fails (%.3f s into the run)", record.fault.target,
                            record.failed_at - self.start)
                injector.fail(record.fault.target)
            else:
                record.restoring_at = time.time()
                injector.restore(record.fault.target)
                record.restored_at = time.time()
                log.warning("fault: %s is back (%.3f s into the run, %.3f s to restore)",
                            record.fault.target, record.restored_at - self.start,
                            record.restored_at - record.restoring_at)

    @property
    def pending(self) -> list[str]:
        """Actions the run ended before."""
        return [f"{action} {record.fault.target} at {when:g} s" for when, action, record in self._actions]


def measure(record: Injected, cut_clouds: Iterable[str], results: Sequence[RequestResult],
            start: float | None) -> dict:
    """What ``record``'s fault cost, from the requests' results (``answered_by``, ``ended_at``).

    ``failover_s``: from the fault to the first answer from a cloud it did not cut off;
    measured only when the cut clouds carried the traffic (the last answer before the
    fault came from one of them), else None. ``recovery_s``: from the node being back to
    the first answer from a cut cloud again (None: not back, or no such answer)."""
    cut = set(cut_clouds)
    answered = sorted((r.ended_at, r.answered_by) for r in results if r.ok)
    out = {"fault": str(record.fault), "failed_at_s": None, "restored_at_s": None,
           "restore_took_s": None, "in_use": False, "failover_s": None, "recovery_s": None}
    if record.failed_at is None:
        return out
    zero = start or 0.0
    out["failed_at_s"] = record.failed_at - zero
    before = [who for when, who in answered if when <= record.failed_at]
    out["in_use"] = bool(before) and before[-1] in cut
    if out["in_use"]:
        after = [when for when, who in answered if when > record.failed_at and who not in cut]
        out["failover_s"] = after[0] - record.failed_at if after else None
    if record.restored_at is not None:
        out["restored_at_s"] = record.restored_at - zero
        out["restore_took_s"] = record.restored_at - record.restoring_at
        again = [when for when, who in answered if when > record.restored_at and who in cut]
        out["recovery_s"] = again[0] - record.restored_at if again else None
    return out
