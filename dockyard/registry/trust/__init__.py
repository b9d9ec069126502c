"""Image trust: signatures the ecosystem verifies and the policy that demands them.

* ``payload``: the "simple signing" JSON both formats sign (GPG's atomic container
  signature, cosign's container image signature);
* ``gpg``: signing and verifying with the ``gpg`` binary (status lines, a throw-away
  keyring per check);
* ``lookaside``: ``registries.d`` and the lookaside storage GPG signatures live in;
* ``cosign``: cosign's keys (the encrypted sigstore PEM) and its signatures in a registry
  (the ``sha256-<hex>.sig`` tag, OCI 1.1 referrers);
* ``policy``: containers-policy.json(5), evaluated before anything of an image is stored.
"""
