#!/usr/bin/env bash
# The main job: make a base image from Debian's busybox-static (no internet registry
# here), run a container from it the way a Docker user would, and show the result.
set -euo pipefail
ROOT="${DOCKYARD_ROOT:-/var/lib/dockyard}"
WORK="$(mktemp -d /tmp/dockyard-hello.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$WORK/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    > "$WORK/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$WORK/rootfs/etc/group"

echo "+ dockyard import (busybox rootfs) busybox:local"
tar -C "$WORK/rootfs" -c . | dockyard --root "$ROOT" import -c 'CMD ["sh"]' - busybox:local
dockyard --root "$ROOT" images busybox
echo "+ dockyard run --rm busybox:local …"
dockyard --root "$ROOT" run --rm --name hello --hostname hello busybox:local sh -c \
    'echo "Hello from a dockyard container: $(hostname), pid $$, $(id)";
     grep -E "^(CapEff|Seccomp|NoNewPrivs):" /proc/self/status'
echo "+ dockyard run -d … ; dockyard ps ; dockyard logs ; dockyard rm -f"
dockyard --root "$ROOT" run -d --name ticker busybox:local sh -c \
    'for i in 1 2 3; do echo tick $i; sleep 0.2; done; sleep 30' >/dev/null
sleep 1
dockyard --root "$ROOT" ps
dockyard --root "$ROOT" logs ticker
dockyard --root "$ROOT" rm -f ticker >/dev/null
