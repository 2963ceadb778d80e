"""Fusion at the end hosts: what an onboard unit sends as a group member, and how the cloud
finishes a group whatever the network did with it.

A model with a fusion layer (index ``f``, K members; docs/wire-format.md, "Fusion") is
run by K senders on one input each: member ``m`` computes layers ``[0, f)`` on its own
input and sends the tensor with ``FUSE``, ``request_id`` = the group id (the frame
number, the same at every member) and ``reserved`` = ``fusion_field(m, K)``
(:func:`member_request`). A switch holding the fusion layer fuses the group and sends one
``FUSED`` tensor on; the cloud finishes the model and answers.

The cloud's side (:class:`FusionJoin`) answers every group exactly once, to **every
member** (the addresses it was given, member ``m`` at ``members[m]``, and any other
source that sent part of the group), with ``RESULT``, ``request_id`` = the group id and
``reserved`` = the bitmap of the members whose tensors the answer is made of. What
reaches it:

- a complete ``FUSED`` tensor (bitmap of all K): finished and answered at once;
- a partial ``FUSED`` tensor (a group the switch released after its timeout) still at the
  fusion's output (``next_layer`` = f + 1), or a member the switch passed on unfused
  (``FUSE``: a slot collision, a member arriving after its group left, or no fusion
  switch on its path at all): joined here with ``dcia.arithmetic.fuse``, which is
  associative, so fusing the partial with the late member gives the fusion of all of
  them. The group is answered when its bitmap is complete or ``wait_s`` after its first
  part arrived here, over the members present;
- a partial ``FUSED`` tensor the network carried past the fusion (switches computed later
  layers on it): it can no longer take members in, so it is finished and answered at
  once from what it holds (its bitmap says which members);
- anything of a group already answered (a member later still, a sender's retry): the
  sender gets the group's answer again; nothing is computed twice;
- a flush (member 15, no tensor) that no switch took: ignored.

    >>> join = FusionJoin(["10.0.1.1", "10.0.3.1"], wait_s=0.1)
    >>> join.stats["groups complete"], join.next_deadline()
    (0, None)
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dcia.model import QuantizedModel
from dcia.wire import DCIA, DCIA_UDP_PORT, FLUSH_MEMBER, Flag, Status, fusion_field, fusion_member
from hosts import messages

Source = tuple[str, int]
ANSWERED_KEPT = 4096
"""Groups whose answer the cloud keeps for late members and retries."""
FUSION_FLAGS = Flag.FUSE | Flag.FUSED


def member_request(model: QuantizedModel, *, group: int, member: int, elems: Sequence[int]) -> bytes:
    """The payload member ``member`` sends for group ``group``: the tensor entering the
    model's fusion layer, ``FUSE`` set.

    >>> from dcia.wire import decode
    >>> from dcia.layers import FusionLayer
    >>> from dcia.model import FloatFusion, FloatModel
    >>> qm = QuantizedModel("f", 2, 1, [FusionLayer(2, 2)], [1.0, 1.0], FloatModel("f", [FloatFusion(2, 2)]))
    >>> msg = decode(member_request(qm, group=7, member=1, elems=[3, -4]))
    >>> msg.request_id, msg.next_layer, hex(msg.reserved), Flag(int(msg.flags))
    (7, 0, '0x12', <Flag.FUSE: 32>)
    """
    f = model.fusion_index
    return messages.tensor_request(
        model_id=model.model_id, version=model.version, request_id=group, next_layer=f,
        elems=elems, flags=Flag.FUSE, reserved=fusion_field(member, model.layers[f].members))


def flush_request(model: QuantizedModel, *, group: int) -> bytes:
    """A flush of the slot of ``group`` (member 15, no tensor): a switch releases the group
    waiting there if it is past its deadline, and drops the flush otherwise."""
    return messages.tensor_request(
        model_id=model.model_id, version=model.version, request_id=group,
        next_layer=model.fusion_index, elems=[], flags=Flag.FUSE,
        reserved=fusion_field(FLUSH_MEMBER, 0))


@dataclass(frozen=True)
class FusionMember:
    """An edge agent's part in fusion groups: it is member ``member``; its input ``i``
    belongs to group ``groups[i]`` (default ``first_group + i``: the frame number, which
    every member of a frame shares)."""

    member: int
    groups: tuple[int, ...] = ()
    first_group: int = 1

    def group(self, index: int) -> int:
        return self.groups[index] if self.groups else self.first_group + index

    def frame(self, index: int) -> int:
        """The frame number of input ``index`` (its group id less ``first_group``): agents
        pacing one frame rate send the members of a group at the same time."""
        return self.group(index) - self.first_group


@dataclass
class _Group:
    tensor: np.ndarray
    """The fusion so far, at the fusion layer's output."""
    bitmap: int
    net_layers: int
    deadline: float
    sources: list[Source] = field(default_factory=list)


class FusionJoin:
    """The cloud's join of fusion groups (the module's docstring): ``offer`` each fusion
    packet, ``expire`` now and then; both return the answers to send, with where to."""

    def __init__(self, members: Sequence[str] = (), *, wait_s: float | None = None,
                 port: int = DCIA_UDP_PORT, kept: int = ANSWERED_KEPT):
        self.members = list(members)
        """Member ``m``'s address; every answer goes to each of them (on ``port``)."""
        self.wait_s = wait_s
        """How long a group waits here for its missing members (None: the layer's timeout)."""
        self.port = port
        self.pending: dict[tuple[int, int, int], _Group] = {}
        self.answered: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self.kept = kept
        self.stats: Counter = Counter({name: 0 for name in (
            "groups complete", "groups partial", "fused in network", "joined here",
            "late", "duplicate", "flush")})
        """``groups complete``/``partial``: groups answered with all / some members;
        ``fused in network``: FUSED tensors received; ``joined here``: parts this join
        fused (unfused members and partials); ``late``: parts of a group already answered
        (answered again); ``duplicate``: a member this join already had; ``flush``: flushes
        no switch took."""
        self.layers_computed = 0

    def next_deadline(self) -> float | None:
        return min((g.deadline for g in self.pending.values()), default=None)

    def offer(self, model: QuantizedModel, msg: DCIA, source: Source,
              now: float) -> list[tuple[bytes, Source]]:
        """Take one fusion packet (``FUSE`` or ``FUSED``, well formed, of ``model``)."""
        f = model.fusion_index
        layer = model.layers[f]
        key = (msg.model_id, msg.model_version, msg.request_id)
        flags = int(msg.flags)
        if not flags & Flag.FUSED and fusion_member(msg.reserved)[0] == FLUSH_MEMBER:
            self.stats["flush"] += 1
            return []
        answer = self.answered.get(key)
        if answer is not None:
            self.stats["late"] += 1
            return [(answer, source)]
        if flags & Flag.FUSED:
            self.stats["fused in network"] += 1
            bitmap, start = msg.reserved & ((1 << layer.members) - 1), msg.next_layer
            if start > f + 1:  # past the fusion: final as it is
                pending = self.pending.pop(key, None)
                return self._finish(model, key, msg.elems, start, bitmap, msg.net_layers,
                                    (pending.sources if pending else []) + [source])
            tensor = np.array(msg.elems, dtype=np.int64)
        else:
            m, k = fusion_member(msg.reserved)
            if k != layer.members or m >= k:
                return [(messages.error_answer(bytes(msg), Status.MALFORMED), source)]
            bitmap, start = 1 << m, msg.next_layer
            tensor = model.forward_int(np.array(msg.elems, dtype=np.int64), start, f + 1)
            self.layers_computed += f + 1 - start
        group = self.pending.get(key)
        if group is None:
            wait = self.wait_s if self.wait_s is not None else layer.timeout_us / 1e6
            group = self.pending[key] = _Group(tensor.astype(np.int64), 0, msg.net_layers, now + wait)
            if flags & Flag.FUSED and bitmap == (1 << layer.members) - 1:
                group.bitmap = bitmap
                group.sources.append(source)
                return self._finish_pending(model, key)
        elif bitmap & ~group.bitmap == 0:
            self.stats["duplicate"] += 1
            return []
        else:
            group.tensor = np.maximum(group.tensor, tensor)
            group.net_layers = max(group.net_layers, msg.net_layers)
        if not flags & Flag.FUSED or bitmap != (1 << layer.members) - 1:
            self.stats["joined here"] += 1
        group.bitmap |= bitmap
        group.sources.append(source)
        if group.bitmap == (1 << layer.members) - 1:
            return self._finish_pending(model, key)
        return []

    def expire(self, models: dict[tuple[int, int], QuantizedModel],
               now: float) -> list[tuple[bytes, Source]]:
        """Answer every group whose wait here is over, over the members present."""
        out: list[tuple[bytes, Source]] = []
        for key in [k for k, g in self.pending.items() if g.deadline <= now]:
            out += self._finish_pending(models[key[:2]], key)
        return out

    def _finish_pending(self, model: QuantizedModel, key) -> list[tuple[bytes, Source]]:
        group = self.pending.pop(key)
        return self._finish(model, key, group.tensor.tolist(), model.fusion_index + 1,
                            group.bitmap, group.net_layers, group.sources)

    def _finish(self, model: QuantizedModel, key, elems: Sequence[int], start: int, bitmap: int,
                net_layers: int, sources: Sequence[Source]) -> list[tuple[bytes, Source]]:
        n = len(model.layers)
        logits = model.forward_int(np.array(elems, dtype=np.int64), start, n)
        self.layers_computed += n - start
        complete = bitmap == (1 << model.layers[model.fusion_index].members) - 1
        self.stats["groups complete" if complete else "groups partial"] += 1
        answer = bytes(DCIA(flags=Flag.RESULT, model_id=key[0], model_version=key[1],
                            next_layer=n, net_layers=net_layers, request_id=key[2],
                            status=Status.OK, reserved=bitmap, elems=logits.tolist()))
        self.answered[key] = answer
        if len(self.answered) > self.kept:
            self.answered.popitem(last=False)
        destinations = [(a, self.port) for a in self.members]
        for source in sources:
            if source[0] not in self.members and source not in destinations:
                destinations.append(source)
        return [(answer, d) for d in destinations]
