"""P4Runtime server of the embedded switch: controlled exactly like `simple_switch_grpc`.

Modules, from the wire inwards:

- `server`: the gRPC service and `serve()`.
- `device`: per-RPC checks, Write batches and atomicity, Read, pipeline config, packet I/O.
- `arbitration`: primary and backup controllers.
- `handler` and one module per kind of entity: `tables` (entries, direct counters and
  meters), `profiles` (members, groups), `oneshot` (one-shot action sets), `externs`
  (counters, meters, registers), `replication` (multicast groups, clone sessions),
  `digests` (DigestEntry, and DigestLists to the primary).
- `schema`: the P4Info bound to the executor's program; `codec`: bytestrings, matches
  and meter configs; `actions`: Action messages.
- `packet_io` (controller headers), `journal` (undo log), `pipeline` (server-side
  records), `status` (errors and gRPC statuses).
"""
