"""The OCI runtime as a library (and ``dockyard-runtime``, its runc-compatible CLI)."""

OCI_VERSION = "1.2.0"  # the runtime-spec version written into configs and state
