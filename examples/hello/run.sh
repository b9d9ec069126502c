#!/usr/bin/env bash
# The main job, what a user does first: make a base image (Debian's busybox-static,
# as there is no internet registry here), build the web app in this directory with
# `dockyard build`, run it with a published port, fetch its pages, and clean up.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="${DOCKYARD_ROOT:-/var/lib/dockyard}"
PORT="${HELLO_PORT:-8080}"
WORK="$(mktemp -d /tmp/dockyard-hello.XXXXXX)"
dy() { dockyard --root "$ROOT" "$@"; }
cleanup() { dy rm -f hello >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$WORK/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    > "$WORK/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$WORK/rootfs/etc/group"
echo "+ dockyard import (busybox-static rootfs) busybox:local"
tar -C "$WORK/rootfs" -c . | dy import -c 'CMD ["sh"]' - busybox:local >/dev/null

echo "+ dockyard build -t hello:1.0 examples/hello"
dy build --progress plain -t hello:1.0 "$HERE"
dy images hello

echo "+ dockyard run -d --name hello -p 127.0.0.1:$PORT:8080 hello:1.0"
dy rm -f hello >/dev/null 2>&1 || true
dy run -d --name hello -p "127.0.0.1:$PORT:8080" hello:1.0
fetch() {
    python3 - "$1" <<'PY'
import sys, time, urllib.request
for attempt in range(50):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
            print(response.read().decode(), end="")
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"no answer from {sys.argv[1]}")
PY
}
echo "+ GET http://127.0.0.1:$PORT/"
fetch "http://127.0.0.1:$PORT/"
echo "+ GET http://127.0.0.1:$PORT/cgi-bin/hello"
fetch "http://127.0.0.1:$PORT/cgi-bin/hello"
dy ps
dy port hello
