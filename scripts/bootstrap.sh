#!/usr/bin/env bash
# Installs what the toolkit needs, idempotently, and is quick when all is there:
#   1. Debian packages (Mininet, iproute2, ping, tcpdump, tshark, ethtool, python3-venv),
#   2. a virtual environment in .venv with the project and its Python dependencies,
#   3. Debian's Mininet Python package made importable from that environment.
# Usage: scripts/bootstrap.sh            (from the repository root; needs root for step 1)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBIAN_PACKAGES=(mininet iproute2 iputils-ping tcpdump tshark ethtool python3-venv)

log() { printf '[bootstrap] %s\n' "$*"; }

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages: ${missing[*]}; run 'sudo $0' once" >&2
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark's package asks whether non-root users may capture: no (the tests run as root).
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x $VENV/bin/python ]]; then
    log "creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall the project only when its dependency list changed.
stamp=$VENV/.dcia-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    log "installing Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" >"$stamp"
fi

# Debian's Mininet is a pure-Python package installed for the system interpreter. Link
# just that package into the venv (not all of /usr/lib/python3/dist-packages, whose old
# protobuf and grpc would shadow the pinned ones).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mininet_dir=$(/usr/bin/python3 -c 'import mininet, os; print(os.path.dirname(mininet.__file__))')
if [[ $(readlink "$site/mininet" 2>/dev/null) != "$mininet_dir" ]]; then
    ln -sfn "$mininet_dir" "$site/mininet"
    log "linked Debian's Mininet ($mininet_dir) into $VENV"
fi
