"""Indexed counters, meters and registers (CounterEntry, MeterEntry, RegisterEntry).

All three are arrays that exist from the moment the pipeline is loaded: writes are
MODIFY only, an unset index means every cell (for writes and for reads), and id 0
reads every array. RegisterEntry is served although BMv2 refuses it, as an extension.
"""

from __future__ import annotations

from collections.abc import Iterator

from finsy.proto import p4d, p4r

from embedded_switch.p4runtime.codec import (
    decode_meter_config,
    decode_uint,
    encode_meter_config,
    encode_uint,
)
from embedded_switch.p4runtime.handler import Handler, only_modify
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.schema import ArraySchema
from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid, unimplemented


def indices(array: ArraySchema, msg, what: str) -> range | list[int]:
    """The cells a request addresses: all when `index` is unset, else the one given."""
    if not msg.HasField("index"):
        return range(array.size)
    index = msg.index.index
    if index < 0:
        raise invalid(f"{what} '{array.name}': index {index} is negative")
    if index >= array.size:
        raise P4RuntimeError(
            Code.OUT_OF_RANGE,
            f"{what} '{array.name}' has {array.size} cells; index {index} is past the end",
        )
    return [index]


class Counters(Handler):
    """CounterEntry: packets and bytes of indexed counter cells."""

    def write(self, kind: int, msg: p4r.CounterEntry, journal: Journal) -> None:
        only_modify(kind, "CounterEntry")
        counter = self.schema.counters[msg.counter_id]
        cells = indices(counter, msg, "counter")
        if not msg.HasField("data"):
            return
        packets, bytes_ = msg.data.packet_count, msg.data.byte_count
        if packets < 0 or bytes_ < 0:
            raise invalid(f"counter '{counter.name}': values must not be negative")
        for index in cells:
            old = self.switch.counter_read(counter.name, index)
            self.switch.counter_write(counter.name, index, packets, bytes_)
            journal.record(lambda i=index, o=old: self.switch.counter_write(counter.name, i, *o))

    def read(self, msg: p4r.CounterEntry) -> Iterator[p4r.Entity]:
        for counter in self.schema.counters.select(msg.counter_id):
            for index in indices(counter, msg, "counter"):
                packets, bytes_ = self.switch.counter_read(counter.name, index)
                yield p4r.Entity(
                    counter_entry=p4r.CounterEntry(
                        counter_id=counter.id,
                        index=p4r.Index(index=index),
                        data=p4r.CounterData(packet_count=packets, byte_count=bytes_),
                    )
                )


class Meters(Handler):
    """MeterEntry: trTCM configuration of indexed meter cells (unset config: always GREEN)."""

    def write(self, kind: int, msg: p4r.MeterEntry, journal: Journal) -> None:
        only_modify(kind, "MeterEntry")
        if msg.HasField("counter_data"):
            raise unimplemented("per-color meter counters are not supported")
        meter = self.schema.meters[msg.meter_id]
        rates = (
            decode_meter_config(msg.config, f"meter '{meter.name}'")
            if msg.HasField("config")
            else None
        )
        for index in indices(meter, msg, "meter"):
            old = self.switch.meter_get(meter.name, index)
            self.switch.meter_set(meter.name, index, rates)
            journal.record(lambda i=index, o=old: self.switch.meter_set(meter.name, i, o))

    def read(self, msg: p4r.MeterEntry) -> Iterator[p4r.Entity]:
        if msg.HasField("counter_data"):
            raise unimplemented("per-color meter counters are not supported")
        for meter in self.schema.meters.select(msg.meter_id):
            for index in indices(meter, msg, "meter"):
                out = p4r.MeterEntry(meter_id=meter.id, index=p4r.Index(index=index))
                config = encode_meter_config(self.switch.meter_get(meter.name, index))
                if config is not None:
                    out.config.CopyFrom(config)
                yield p4r.Entity(meter_entry=out)


class Registers(Handler):
    """RegisterEntry: cells of `bit<W>` registers as P4Data bitstrings."""

    def write(self, kind: int, msg: p4r.RegisterEntry, journal: Journal) -> None:
        only_modify(kind, "RegisterEntry")
        register = self.schema.registers[msg.register_id]
        if msg.data.WhichOneof("data") != "bitstring":
            raise invalid(f"register '{register.name}': data must be a P4Data bitstring")
        value = decode_uint(msg.data.bitstring, register.bitwidth, f"register '{register.name}'")
        for index in indices(register, msg, "register"):
            old = self.switch.register_read(register.name, index)
            self.switch.register_write(register.name, index, value)
            journal.record(lambda i=index, o=old: self.switch.register_write(register.name, i, o))

    def read(self, msg: p4r.RegisterEntry) -> Iterator[p4r.Entity]:
        for register in self.schema.registers.select(msg.register_id):
            for index in indices(register, msg, "register"):
                value = self.switch.register_read(register.name, index)
                yield p4r.Entity(
                    register_entry=p4r.RegisterEntry(
                        register_id=register.id,
                        index=p4r.Index(index=index),
                        data=p4d.P4Data(bitstring=encode_uint(value)),
                    )
                )
