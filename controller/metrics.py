"""Live records of the switches, from what they hold and count (pure: no I/O).

A switch advertises nothing itself: the controller derives its capability record
(dcia.capability) from what ``controller.session.switch_status`` reads over P4Runtime:

- the operations and sizes its P4 program supports: the topology's record, which
  topology loading already checked against the program (``DCIA_PROGRAM``);
- the model versions and layers installed, as read back (``models``);
- rates from the counter deltas between two readings (``SwitchRates``), and from them
  its ``load``: the share of one pipeline pass per layer (``layer_time_s``) the computed
  layers took, ``layers/s * layer_time_s``;
- table occupancy against table size.

Hosts advertise their own records (dcia.metrics); ``controller.session`` reads switches.

    >>> from controller.session import SwitchStatus
    >>> before = SwitchStatus("s1", stats={"computed": 10}, read_at=100.0)
    >>> after = SwitchStatus("s1", models={(1, 1): [1, 2]}, stats={"computed": 510}, read_at=102.0)
    >>> r = rates(before, after)
    >>> r.per_s["computed"]
    250.0
    >>> rec = switch_record(Capability.nominal("s1", "switch", layer_time_s=1e-3), after, r)
    >>> rec.load, rec.models[0].layers
    (0.25, (1, 2))
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from controller.entries import DROP_NAMES, STAT_NAMES
from controller.session import SwitchStatus
from dcia.capability import Capability
from dcia.errors import DciaError


@dataclass(frozen=True)
class SwitchRates:
    """Packets per second between two readings of one switch, by counter name."""

    interval_s: float
    per_s: dict[str, float]
    """``dcia_stats`` (controller.entries.STAT_NAMES) and ``ipv4_drops`` (DROP_NAMES)."""
    layers_per_s: dict[int, float] = field(default_factory=dict)
    """Layer index -> packets per second that computed it."""
    reset: bool = False
    """A counter went down between the readings: the switch restarted (rates from zero)."""


def rates(before: SwitchStatus, after: SwitchStatus) -> SwitchRates:
    """The rates between two successful readings of the same switch."""
    if before.error or after.error:
        raise DciaError(f"switch {after.name}: no rates without two readings "
                        f"({after.error or before.error})")
    interval = after.read_at - before.read_at
    if interval <= 0:
        raise DciaError(f"switch {after.name}: readings are not in time order")
    reset = False

    def delta(new: int, old: int) -> float:
        nonlocal reset
        if new < old:
            reset, old = True, 0
        return (new - old) / interval

    per_s = {}
    for names, now, then in ((STAT_NAMES, after.stats, before.stats),
                             (DROP_NAMES, after.drops, before.drops)):
        for name in names:
            per_s[name] = delta(now.get(name, 0), then.get(name, 0))
    layers = {i: delta(n, before.layers_computed.get(i, 0))
              for i, n in sorted(after.layers_computed.items())}
    return SwitchRates(interval, per_s, layers, reset)


def switch_record(nominal: Capability, status: SwitchStatus,
                  measured: SwitchRates | None = None) -> Capability:
    """``nominal`` (the topology's record of the switch) with what ``status`` shows it
    holds and, given rates, the load they put on it."""
    models = [{"model_id": m, "version": v, "layers": list(layers)}
              for (m, v), layers in sorted(status.models.items())]
    load = nominal.load
    if measured is not None:
        load = min(1.0, measured.per_s.get("computed", 0.0) * nominal.layer_time_s)
    return replace(nominal, models=tuple(Capability.from_dict(
        {"name": nominal.name, "kind": "switch", "models": models}).models), load=load)
