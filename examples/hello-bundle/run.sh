#!/usr/bin/env bash
# The main job for now: make an OCI bundle from Debian's busybox-static, give it
# dockyard's default (Docker-like) spec, and run it with dockyard.
set -euo pipefail
WORK="$(mktemp -d /tmp/dockyard-hello.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bundle/rootfs/bin"
cp /bin/busybox "$WORK/bundle/rootfs/bin/busybox"
for applet in sh echo hostname id cat grep; do
    ln -s busybox "$WORK/bundle/rootfs/bin/$applet"
done
dockyard-runtime spec --bundle "$WORK/bundle"
python3 - "$WORK/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c",
    "echo \"Hello from $(hostname): I am pid $$, $(id)\"; "
    "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status"]
json.dump(config, open(path, "w"), indent=2)
PY
dockyard --root "$WORK/root" run-bundle --name hello "$WORK/bundle"
