#!/usr/bin/env bash
# Installs what the toolkit needs, idempotently, and is quick when all is there:
#   1. Debian packages (Mininet, iproute2, ping, tcpdump, tshark, ethtool, python3-venv;
#      fortunes: the text corpus of the text demo, demos/text/model.py),
#   2. a virtual environment in .venv with the project and its Python dependencies,
#   3. Debian's Mininet Python package made importable from that environment,
#   4. p4runtime-shell in a virtual environment of its own, .venv-p4rt-shell (`dcia shell`).
# Usage: scripts/bootstrap.sh            (from the repository root; needs root for step 1)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBIAN_PACKAGES=(mininet iproute2 iputils-ping tcpdump tshark ethtool python3-venv fortunes)

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

# p4runtime-shell (`dcia shell`) in a virtual environment of its own: it needs protobuf
# below 3.21 and p4runtime 1.4.1, the project's environment protobuf 6. Every package is
# pinned; a changed list rebuilds the environment from scratch. It ignores itself in git.
SHELL_VENV=${P4RT_SHELL_VENV:-.venv-p4rt-shell}
SHELL_PINS=(
    p4runtime-shell==0.0.6 p4runtime==1.4.1 protobuf==3.20.3 grpcio==1.85.3
    googleapis-common-protos==1.73.0 ipython==7.31.1 jedi==0.17.2 parso==0.7.1
    traitlets==5.16.1 prompt_toolkit==3.0.53 Pygments==2.21.0 backcall==0.2.0
    decorator==5.3.1 matplotlib-inline==0.2.2 pexpect==4.9.0 pickleshare==0.7.5
    ptyprocess==0.7.0 typing_extensions==4.16.0 wcwidth==0.9.4
)
shell_stamp=$SHELL_VENV/.dcia-installed
shell_want=$(printf '%s\n' "${SHELL_PINS[@]}" | sha256sum | cut -d' ' -f1)
if [[ ! -f $shell_stamp || $(cat "$shell_stamp") != "$shell_want" ]]; then
    log "installing p4runtime-shell into $SHELL_VENV"
    "$PYTHON" -m venv --clear "$SHELL_VENV"
    echo '*' >"$SHELL_VENV/.gitignore"
    "$SHELL_VENV/bin/python" -m pip install -q --disable-pip-version-check "${SHELL_PINS[@]}"
    "$SHELL_VENV/bin/python" -c 'import p4runtime_sh.shell'
    echo "$shell_want" >"$shell_stamp"
fi
