"""What every entity handler shares: the executor, the pipeline, and the update kinds.

Each kind of P4Runtime entity has a handler with `write(kind, msg, journal)` and
`read(msg) -> Iterator[p4r.Entity]`; `device.Device` dispatches to them.
"""

from __future__ import annotations

from finsy.proto import p4r

from embedded_switch.p4runtime.pipeline import Pipeline
from embedded_switch.p4runtime.status import invalid

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE


class Handler:
    """Writes and reads one kind of P4Runtime entity through the executor."""

    def __init__(self, switch, pipeline: Pipeline):
        self.switch = switch
        self.pipeline = pipeline
        self.schema = pipeline.schema


def only_modify(kind: int, what: str) -> None:
    """Counters, meters, registers and direct resources exist from the start: MODIFY only."""
    if kind != MODIFY:
        raise invalid(f"{what} only supports MODIFY, not {p4r.Update.Type.Name(kind)}")
