"""Client arbitration: which controller stream is the primary for a (device, role).

The rules are those of the P4Runtime spec (§ Client Arbitration and Controller
Replication): the primary is the live controller whose election id equals the highest
election id the server has ever accepted for the device and role. When the primary
leaves or downgrades itself there is no primary until a controller sends an election id
at least as high. Every change is announced to the controllers with a
MasterArbitrationUpdate whose status is OK for the primary, ALREADY_EXISTS for backups
while there is a primary, and NOT_FOUND for backups when there is none.

Only the default role is arbitrated; a named role or a role config is UNIMPLEMENTED.
As in BMv2, at most `MAX_CONTROLLERS` streams take part; one more is refused with
RESOURCE_EXHAUSTED until one of them leaves.

    arbitration = Arbitration(device_id=1)
    arbitration.join(controller, election_id=10)  # controller.send() gets the notice
    arbitration.may_write(10)                      # True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from finsy.proto import p4r, rpc_status

from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid, unimplemented

log = logging.getLogger(__name__)

#: Controllers (arbitrated streams) a device serves at once: BMv2's (PI's) limit.
MAX_CONTROLLERS = 16


def election_id_of(msg) -> int | None:
    """The 128-bit election id of a message, None when the field is unset."""
    if not msg.HasField("election_id"):
        return None
    return (msg.election_id.high << 64) | msg.election_id.low


def _uint128(value: int) -> p4r.Uint128:
    return p4r.Uint128(high=value >> 64, low=value & ((1 << 64) - 1))


@dataclass(eq=False)
class Controller:
    """One StreamChannel: `send` queues a message for it; `offer` may drop one
    (packet-ins, when the controller falls behind)."""

    send: Callable[[p4r.StreamMessageResponse], None]
    offer: Callable[[p4r.StreamMessageResponse], None] | None = None
    election_id: int | None = None
    joined: bool = field(default=False, init=False)


class Arbitration:
    """Primary and backup controllers of one device (default role)."""

    def __init__(self, device_id: int):
        self.device_id = device_id
        self._lock = threading.Lock()
        self._controllers: list[Controller] = []
        self._highest: int | None = None  # highest election id ever accepted

    def arbitrate(self, controller: Controller, update: p4r.MasterArbitrationUpdate) -> None:
        """Handle a MasterArbitrationUpdate; raises P4RuntimeError to end the stream."""
        if update.device_id != self.device_id:
            code = Code.FAILED_PRECONDITION if controller.joined else Code.NOT_FOUND
            raise P4RuntimeError(
                code,
                f"device id {update.device_id} is not this switch's ({self.device_id})",
            )
        if update.HasField("role") and (update.role.name or update.role.HasField("config")):
            raise unimplemented(
                f"role '{update.role.name}': only the default role (role unset) is supported"
            )
        election_id = election_id_of(update)
        with self._lock:
            if not controller.joined and len(self._controllers) >= MAX_CONTROLLERS:
                raise P4RuntimeError(
                    Code.RESOURCE_EXHAUSTED,
                    f"too many controllers: this switch serves at most {MAX_CONTROLLERS}"
                    " streams that sent arbitration; close one and try again",
                )
            if election_id is not None and any(
                c is not controller and c.election_id == election_id for c in self._controllers
            ):
                raise invalid(f"election id {election_id} is already used by another controller")
            was_primary = self._is_primary(controller)
            controller.election_id = election_id
            if not controller.joined:
                controller.joined = True
                self._controllers.append(controller)
            if election_id is not None and (self._highest is None or election_id >= self._highest):
                had_primary = self._primary() not in (None, controller)
                self._highest = election_id
                log.info("controller with election id %d is primary", election_id)
                if had_primary or was_primary:
                    self._notify(c for c in self._controllers if c is not controller)
                    self._notify([controller])
                else:
                    self._notify(self._controllers)
            elif was_primary:
                self._notify(self._controllers)
            else:
                self._notify([controller])

    def leave(self, controller: Controller) -> None:
        """The controller's stream ended; tell the others if it was the primary."""
        with self._lock:
            if controller not in self._controllers:
                return
            was_primary = self._is_primary(controller)
            self._controllers.remove(controller)
            if was_primary:
                log.info("primary controller left")
                self._notify(self._controllers)

    def may_write(self, election_id: int | None) -> bool:
        """Whether a Write (or SetForwardingPipelineConfig) with this election id is allowed.

        As in BMv2, a request without an election id is accepted while no controller
        holds a stream open (convenient for scripts); otherwise only the primary's.
        """
        with self._lock:
            if not self._controllers:
                return election_id is None
            primary = self._primary()
            return primary is not None and primary.election_id == election_id

    def is_primary(self, controller: Controller) -> bool:
        with self._lock:
            return self._is_primary(controller)

    def primary(self) -> Controller | None:
        with self._lock:
            return self._primary()

    def _primary(self) -> Controller | None:
        if self._highest is None:
            return None
        return next((c for c in self._controllers if c.election_id == self._highest), None)

    def _is_primary(self, controller: Controller) -> bool:
        return self._highest is not None and controller.election_id == self._highest and (
            controller in self._controllers
        )

    def _notify(self, controllers) -> None:
        primary = self._primary()
        for controller in list(controllers):
            update = p4r.MasterArbitrationUpdate(device_id=self.device_id)
            if self._highest is not None:
                update.election_id.CopyFrom(_uint128(self._highest))
            if controller is primary:
                update.status.CopyFrom(rpc_status.Status(code=Code.OK, message="primary"))
            elif primary is not None:
                update.status.CopyFrom(
                    rpc_status.Status(code=Code.ALREADY_EXISTS, message="backup")
                )
            else:
                update.status.CopyFrom(
                    rpc_status.Status(code=Code.NOT_FOUND, message="backup; no primary")
                )
            controller.send(p4r.StreamMessageResponse(arbitration=update))
