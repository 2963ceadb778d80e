#!/usr/bin/env bash
# Recompiles the conformance programs with the real p4c (BMv2 back end, v1model):
# NAME.p4 -> NAME.json + NAME.p4info.txtpb beside the source. The tests use the
# committed outputs and never need p4c; run this after changing a program.
# Usage: tests/conformance/compile_programs.sh [NAME ...]
set -euo pipefail
cd "$(dirname "$0")/programs"
P4C=${P4C:-$(command -v p4c || echo /opt/p4/bin/p4c)}
if [[ ! -x $P4C ]]; then
    echo "p4c not found (set P4C=/path/to/p4c)" >&2
    exit 1
fi
names=("$@")
if ((${#names[@]} == 0)); then
    names=()
    for f in *.p4; do names+=("${f%.p4}"); done
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for name in "${names[@]}"; do
    echo "compiling $name.p4"
    "$P4C" --target bmv2 --arch v1model --p4runtime-files "$name.p4info.txtpb" -o "$out" "$name.p4" ||
        { echo "p4c failed on $name.p4 (exit $?)" >&2; exit 1; }
    # the JSON names the temporary preprocessed file: name the source, so reruns do not differ
    sed "s|\"program\" : \".*\"|\"program\" : \"$name.p4\"|" "$out/$name.json" >"$name.json"
done
