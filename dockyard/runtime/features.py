"""``dockyard-runtime features``: what this runtime implements, in runc's JSON shape."""

from __future__ import annotations

from dockyard.oci.runtime_spec import HOOK_KINDS, NAMESPACE_TYPES
from dockyard.runtime import OCI_VERSION
from dockyard.runtime.linux.capabilities import CAPABILITY_NAMES
from dockyard.runtime.linux.mountopts import ALL_OPTIONS
from dockyard.runtime.linux.seccomp import _OPS


def features() -> dict[str, object]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": list(ALL_OPTIONS),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": list(CAPABILITY_NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                            "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": sorted(_OPS),
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.dockyard.runtime.version": "0.1.0"},
    }
