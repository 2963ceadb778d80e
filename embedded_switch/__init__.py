"""The embedded switch: a pure-Python executor of BMv2 JSON (v1model) that behaves like
BMv2 simple_switch_grpc.

- `compiler`: validates a BMv2 JSON and translates it into Python once, at load time.
- `switch`: `Switch`, the run-time state API and the v1model packet path.
- `ports`: real Linux interfaces (AF_PACKET) and the CPU port.
- `cli`: `dcia-switch`, with simple_switch_grpc's command line.
- `p4runtime`: the P4Runtime server on top of `Switch`.
"""
