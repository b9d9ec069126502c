#!/usr/bin/env bash
# Install dockyard and everything it needs on a fresh Debian 12 machine (as root).
#   bash scripts/install.sh             # runtime dependencies + dockyard
#   bash scripts/install.sh --dev       # also the test and lint tools
#   bash scripts/install.sh --no-links  # leave /usr/local/bin alone (scripts/test.sh)
# dockyard goes into its own virtualenv (/opt/dockyard, or $DOCKYARD_VENV): its
# interpreter starts in ~9 ms there, against ~30 ms with a crowded system
# site-packages, and every container start pays that.  The virtualenv is made from
# Debian's python3.11 ($DOCKYARD_PYTHON to choose another 3.11+): it is built with
# profile-guided optimisation and links libpython statically, and runs dockyard's code
# ~20% faster than a default source build of 3.11 with a shared libpython (pyenv's):
# every command and container start pays the difference.  Unless --no-links,
# `dockyard` and `dockyard-runtime` are linked into /usr/local/bin.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKYARD_VENV:-/opt/dockyard}"
DEV=0
LINKS=1
for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        --no-links) LINKS=0 ;;
        *) echo "usage: $0 [--dev] [--no-links]" >&2; exit 2 ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iptables: network isolation and NAT (dockyard's own chains)
apt-get install -y -qq busybox-static runc libseccomp2 iproute2 iptables procps tini \
    python3.11 python3.11-venv >/dev/null
if [[ $DEV == 1 ]]; then
    # compatibility tests: a real dockerd drives dockyard-runtime; images go through
    # Debian's docker-registry (htpasswd from apache2-utils), skopeo and umoci; gnupg for
    # the image-signing tests (skopeo judges dockyard's GPG signatures and vice versa);
    # podman (with catatonit, its pause) plays the kube tests' files beside `kube play`
    apt-get install -y -qq docker.io docker-registry skopeo umoci apache2-utils gnupg \
        podman catatonit >/dev/null
fi

PYTHON="${DOCKYARD_PYTHON:-/usr/bin/python3.11}"
CLEAR=()  # a virtualenv made from another interpreter (an older install.sh): made anew
if [[ -e "$VENV/bin/python3" ]] && \
        [[ "$("$VENV/bin/python3" -c 'import sys; print(sys._base_executable)')" != \
           "$(readlink -f "$PYTHON")" ]]; then
    CLEAR=(--clear)
fi
"$PYTHON" -m venv "${CLEAR[@]}" "$VENV"
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
if [[ $DEV == 1 ]]; then
    "$VENV/bin/pip" install -q -e "$HERE[dev]"
else
    "$VENV/bin/pip" install -q "$HERE"
    # the commands start without `site` (see bin/dockyard): pip writes the interpreter's
    # path alone on their first line; an editable install (--dev) keeps it, as its
    # package is found through a .pth that only `site` reads
    sed -i '1s|^\(#!.*python[0-9.]*\)$|\1 -S|' "$VENV/bin/dockyard" "$VENV/bin/dockyard-runtime"
fi
# setuptools is only needed to build the package (pip does that in an isolated env); at
# run time its distutils hook would cost every command ~1.5 ms of start-up
"$VENV/bin/pip" uninstall -q -y setuptools >/dev/null 2>&1 || true
if [[ $LINKS == 1 ]]; then
    ln -sf "$VENV/bin/dockyard" /usr/local/bin/dockyard
    ln -sf "$VENV/bin/dockyard-runtime" /usr/local/bin/dockyard-runtime
    echo "dockyard installed in $VENV (dockyard, dockyard-runtime on PATH)"
else
    echo "dockyard installed in $VENV (not linked into /usr/local/bin)"
fi
