"""Digests: DigestEntry configures them, DigestList carries them, DigestListAck answers.

A P4 `digest<T>` the data plane generates reaches the primary controller only while a
DigestEntry enables it; otherwise it is dropped (and counted). Enabled digests are
batched as the spec's DigestEntry section asks (BMv2's PI server departs from it where
docs/embedded-switch.md says):

- a DigestList goes out when `max_list_size` distinct digests are waiting (0: no limit),
  or `max_timeout_ns` after the first one entered the empty list (0: at once);
- the digests of a list sent but not acknowledged are not sent again, until a
  DigestListAck with its `digest_id` and `list_id` arrives or `ack_timeout_ns` passes
  (0: no such cache, every digest is sent);
- a list for which there is no primary controller is dropped, and not cached.

The executor calls `learn` outside its lock; writes call in with the switch lock held.
Both take this module's lock, which never waits for the switch lock or a controller.

    digests = Digests(switch, pipeline, primary=arbitration.primary)
    digests.write(INSERT, p4r.DigestEntry(digest_id=id_, config=config), Journal())
    digests.learn("mac_learn_t", [0x0A0000000001, 3])   # a DigestList for the primary
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from finsy.proto import p4d, p4r

from embedded_switch.p4runtime.arbitration import Controller
from embedded_switch.p4runtime.codec import encode_uint
from embedded_switch.p4runtime.handler import DELETE, INSERT, MODIFY, Handler
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.pipeline import Pipeline
from embedded_switch.p4runtime.schema import DigestSchema
from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid, not_found

log = logging.getLogger(__name__)

#: One digest's data as the executor reports it: the values of its fields, in order.
Sample = tuple[int, ...]


@dataclass
class _Learning:
    """An enabled digest: its config, the list being filled, the lists awaiting an ack."""

    config: p4r.DigestEntry.Config
    waiting: dict[Sample, None] = field(default_factory=dict)  # insertion-ordered set
    timer: threading.Timer | None = None
    batch: int = 0  # lists sent or dropped so far: tells a timer whether its list is gone
    #: Lists sent and not yet acknowledged, oldest first: list id -> (monotonic ns, data).
    unacked: dict[int, tuple[int, list[Sample]]] = field(default_factory=dict)
    cache: dict[Sample, int] = field(default_factory=dict)  # sample -> its unacked list

    def forget(self, list_id: int) -> None:
        _, samples = self.unacked.pop(list_id, (0, []))
        for sample in samples:
            if self.cache.get(sample) == list_id:
                del self.cache[sample]

    def expire(self, now_ns: int) -> None:
        """Forget the lists unacknowledged for `ack_timeout_ns` (oldest are first)."""
        for list_id, (sent, _) in list(self.unacked.items()):
            if now_ns - sent < self.config.ack_timeout_ns:
                break
            self.forget(list_id)

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Digests(Handler):
    """DigestEntry writes and reads, and the delivery of DigestLists to the primary."""

    def __init__(
        self,
        switch,
        pipeline: Pipeline,
        primary: Callable[[], Controller | None],
    ):
        super().__init__(switch, pipeline)
        self._primary = primary
        self._by_name = {d.name: d for d in self.schema.digests}
        self._lock = threading.Lock()
        self._enabled: dict[int, _Learning] = {}
        self._list_ids: collections.Counter = collections.Counter()  # digest id -> last list id
        #: Digests not delivered, by reason; and lists sent.
        self.stats: collections.Counter = collections.Counter()

    # -- DigestEntry --------------------------------------------------------------------

    def write(self, kind: int, msg: p4r.DigestEntry, journal: Journal) -> None:
        digest = self.schema.digests[msg.digest_id]
        if kind not in (INSERT, MODIFY, DELETE):
            raise invalid(f"unknown update type {kind} for DigestEntry")
        config = _checked_config(digest, msg) if kind != DELETE else None
        with self._lock:
            old = self._enabled.get(digest.id)
            if kind == INSERT:
                if old is not None:
                    raise P4RuntimeError(
                        Code.ALREADY_EXISTS,
                        f"digest '{digest.name}' is already enabled (MODIFY changes its config)",
                    )
                self._enabled[digest.id] = _Learning(config)
                journal.record(lambda: self._disable(digest.id))
                return
            if old is None:
                raise not_found(f"digest '{digest.name}' is not enabled (INSERT enables it)")
            if kind == MODIFY:
                old_config, old.config = old.config, config
                journal.record(lambda: self._set_config(old, old_config))
            else:
                self._drop(digest.id)
                journal.record(lambda: self._enable(digest.id, old))

    def read(self, msg: p4r.DigestEntry) -> Iterator[p4r.Entity]:
        digests = self.schema.digests.select(msg.digest_id)
        with self._lock:
            configs = [(d.id, self._enabled[d.id].config) for d in digests if d.id in self._enabled]
        for digest_id, config in configs:
            yield p4r.Entity(digest_entry=p4r.DigestEntry(digest_id=digest_id, config=config))

    def _disable(self, digest_id: int) -> None:
        with self._lock:
            self._drop(digest_id)

    def _drop(self, digest_id: int) -> None:
        """Stop delivering a digest; what waits for its list is lost (the lock is held)."""
        learning = self._enabled.pop(digest_id, None)
        if learning is not None:
            learning.stop_timer()
            self.stats["dropped_disabled"] += len(learning.waiting)
            learning.waiting.clear()

    def _enable(self, digest_id: int, learning: _Learning) -> None:
        with self._lock:
            self._enabled[digest_id] = learning

    def _set_config(self, learning: _Learning, config: p4r.DigestEntry.Config) -> None:
        with self._lock:
            learning.config = config

    # -- delivery -----------------------------------------------------------------------

    def learn(self, name: str, values: list[int]) -> None:
        """A digest from the data plane: batch it for the primary, or drop it."""
        digest = self._by_name.get(name)
        sample = tuple(values)
        with self._lock:
            if digest is None:
                self.stats["dropped_not_in_p4info"] += 1
                log.debug("digest '%s' dropped: the P4Info does not declare it", name)
                return
            learning = self._enabled.get(digest.id)
            if learning is None:
                self.stats["dropped_not_enabled"] += 1
                log.debug("digest '%s' dropped: no DigestEntry enables it", name)
                return
            learning.expire(time.monotonic_ns())
            if sample in learning.cache or sample in learning.waiting:
                self.stats["duplicates"] += 1
                return
            learning.waiting[sample] = None
            config = learning.config
            full = 0 < config.max_list_size <= len(learning.waiting)
            if full or config.max_timeout_ns == 0:
                self._send(digest, learning)
            elif learning.timer is None:
                learning.timer = threading.Timer(
                    config.max_timeout_ns / 1e9, self._timeout, (digest, learning, learning.batch)
                )
                learning.timer.daemon = True
                learning.timer.start()

    def ack(self, ack: p4r.DigestListAck) -> None:
        """The primary acted on a list: its digests may be sent again."""
        digest = self.schema.digests[ack.digest_id]
        with self._lock:
            learning = self._enabled.get(digest.id)
            if learning is not None:
                learning.forget(ack.list_id)

    def forget_sent(self) -> None:
        """The primary changed: the new one must hear of everything, even what was sent."""
        with self._lock:
            for learning in self._enabled.values():
                learning.unacked.clear()
                learning.cache.clear()

    def close(self) -> None:
        """The pipeline is replaced: stop every timer and drop what is waiting."""
        with self._lock:
            for digest_id in list(self._enabled):
                self._drop(digest_id)

    def _timeout(self, digest: DigestSchema, learning: _Learning, batch: int) -> None:
        with self._lock:
            if self._enabled.get(digest.id) is learning and learning.batch == batch:
                self._send(digest, learning)

    def _send(self, digest: DigestSchema, learning: _Learning) -> None:
        """Send the waiting digests as one DigestList (the lock is held)."""
        learning.stop_timer()
        learning.batch += 1
        samples = list(learning.waiting)
        learning.waiting.clear()
        primary = self._primary()
        if primary is None:
            self.stats["dropped_no_primary"] += len(samples)
            log.debug("%d digests '%s' dropped: no primary controller", len(samples), digest.name)
            return
        self._list_ids[digest.id] += 1
        list_id = self._list_ids[digest.id]
        message = p4r.DigestList(
            digest_id=digest.id,
            list_id=list_id,
            data=[_p4data(digest, sample) for sample in samples],
            timestamp=time.time_ns(),
        )
        (primary.offer or primary.send)(p4r.StreamMessageResponse(digest=message))
        self.stats["lists_sent"] += 1
        if learning.config.ack_timeout_ns > 0:
            learning.unacked[list_id] = (time.monotonic_ns(), samples)
            learning.cache.update(dict.fromkeys(samples, list_id))


def _checked_config(digest: DigestSchema, msg: p4r.DigestEntry) -> p4r.DigestEntry.Config:
    config = msg.config
    negative = [
        name
        for name in ("max_timeout_ns", "max_list_size", "ack_timeout_ns")
        if getattr(config, name) < 0
    ]
    if negative:
        raise invalid(f"digest '{digest.name}': {', '.join(negative)} must not be negative")
    return p4r.DigestEntry.Config(
        max_timeout_ns=config.max_timeout_ns,
        max_list_size=config.max_list_size,
        ack_timeout_ns=config.ack_timeout_ns,
    )


def _p4data(digest: DigestSchema, sample: Sample) -> p4d.P4Data:
    """One digest's data as the P4Info types it: struct or tuple members, or a bitstring."""
    if digest.kind == "bitstring":
        return p4d.P4Data(bitstring=encode_uint(sample[0]))
    members = p4d.P4StructLike(members=[p4d.P4Data(bitstring=encode_uint(v)) for v in sample])
    return p4d.P4Data(**{digest.kind: members})
