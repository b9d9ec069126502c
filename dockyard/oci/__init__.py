"""Pure OCI data types: runtime spec (and later image manifests, digests, references)."""
