"""OpenPGP signing and verifying through the ``gpg`` binary (Debian's gnupg).

gpg speaks to programs through status lines (``--status-fd``): ``SIG_CREATED`` after
signing, ``GOODSIG``/``VALIDSIG`` after a good signature, ``BADSIG``/``ERRSIG``/
``EXPKEYSIG``/``REVKEYSIG`` otherwise; its exit code and prose are not relied on.
Signing uses the user's keyring (``GNUPGHOME`` or ``~/.gnupg``); verifying imports the
policy's keys into a throw-away home, so only those keys can make a signature valid,
and stops the agent a home may have started before removing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

from dockyard.errors import InvalidArgument, Unavailable
from dockyard.registry.trust.payload import MAX_PAYLOAD, InvalidSignature

_BAD = {"BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "FAILURE"}


def _gpg() -> str:
    binary = shutil.which("gpg")
    if binary is None:
        raise Unavailable("gpg is not installed (Debian package gnupg)")
    return binary


def _run(args: Sequence[str], stdin: bytes, home: str | None = None
         ) -> tuple[subprocess.CompletedProcess[bytes], list[list[str]]]:
    """gpg with ``args``; its result and its status lines (split into words)."""
    with tempfile.TemporaryFile() as status:
        fd = status.fileno()
        argv = [_gpg(), "--batch", "--no-tty", "--status-fd", str(fd)]
        if home is not None:
            argv += ["--homedir", home]
        try:
            done = subprocess.run([*argv, *args], input=stdin, capture_output=True,
                                  pass_fds=(fd,), timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"gpg {args[-1]}: no answer in 120 s") from exc
        status.seek(0)
        lines = [line.split()[1:] for line in status.read().decode(errors="replace")
                 .splitlines() if line.startswith("[GNUPG:] ")]
    return done, [words for words in lines if words]


def _last_words(done: subprocess.CompletedProcess[bytes]) -> str:
    text = done.stderr.decode(errors="replace").strip().splitlines()
    return text[-1] if text else f"exit status {done.returncode}"


def sign(payload: bytes, fingerprint: str) -> bytes:
    """An OpenPGP signed message (binary, not detached) of ``payload`` by the key
    ``fingerprint`` of the user's keyring: what ``skopeo copy --sign-by`` writes."""
    if not fingerprint or fingerprint.startswith("-") or any(c.isspace() for c in fingerprint):
        raise InvalidArgument(f"--sign-by: bad key fingerprint {fingerprint!r}")
    done, status = _run(["--local-user", fingerprint, "--sign"], payload)
    if done.returncode != 0 or not any(words[0] == "SIG_CREATED" for words in status):
        raise InvalidArgument(f"signing with key {fingerprint} failed: {_last_words(done)}")
    return done.stdout


def _import(home: str, keys: Sequence[bytes]) -> set[str]:
    fingerprints: set[str] = set()
    for key in keys:
        done, status = _run(["--import"], key, home)
        found = {words[2].upper() for words in status
                 if words[0] == "IMPORT_OK" and len(words) > 2}
        if not found:
            raise InvalidArgument(f"no OpenPGP public key could be read: {_last_words(done)}")
        fingerprints |= found
    return fingerprints


class Verifier:
    """A throw-away keyring holding exactly ``keys``; use as a context manager."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = keys
        self._home = ""
        self.fingerprints: set[str] = set()

    def __enter__(self) -> Verifier:
        self._home = tempfile.mkdtemp(prefix="dockyard-gpg-")
        try:
            self.fingerprints = _import(self._home, self._keys)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._home:
            return
        gpgconf = shutil.which("gpgconf")
        if gpgconf is not None and any(name.startswith("S.") for name in
                                       os.listdir(self._home)):
            subprocess.run([gpgconf, "--homedir", self._home, "--kill", "all"],
                           capture_output=True, timeout=30, check=False)
        shutil.rmtree(self._home, ignore_errors=True)
        self._home = ""

    def verify(self, signature: bytes) -> tuple[bytes, str]:
        """The signed payload and the signer's fingerprint; ``InvalidSignature`` unless
        exactly one good signature by one of the keys covers it."""
        if len(signature) > MAX_PAYLOAD:
            raise InvalidSignature("signature is larger than 4 MiB")
        # --max-output: a compressed message cannot unfold into more than a payload may be
        done, status = _run(["--trust-model", "always", "--max-output", str(MAX_PAYLOAD),
                             "--decrypt"], signature, self._home)
        words = [w for w in status if w[0] in _BAD]
        if words and words[0][0] in ("ERRSIG", "NO_PUBKEY") and len(words[0]) > 1:
            raise InvalidSignature(f"signed by key {words[0][1]}, which the policy does "
                                   "not trust")
        if words:
            raise InvalidSignature(f"invalid signature: {' '.join(words[0][:2])}")
        valid = [w for w in status if w[0] == "VALIDSIG"]
        if done.returncode != 0 or len(valid) != 1 or \
                sum(w[0] == "GOODSIG" for w in status) != 1:
            raise InvalidSignature(f"not a valid signature: {_last_words(done)}")
        signer = valid[0][1].upper()
        primary = valid[0][10].upper() if len(valid[0]) > 10 else signer
        if signer not in self.fingerprints and primary not in self.fingerprints:
            raise InvalidSignature(f"signed by key {signer}, which the policy does not trust")
        return done.stdout, primary
