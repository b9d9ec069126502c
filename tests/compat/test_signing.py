"""Image signing and the signature policy, judged by tools nobody here wrote.

GPG simple signing: skopeo 1.9 (Debian) verifies what ``dockyard push --sign-by``
signed (``standalone-verify``, and ``copy`` under a ``signedBy`` policy reading the same
``registries.d`` lookaside), and dockyard's pull/run under the policy accept what
``skopeo copy --sign-by`` signed.  Debian's skopeo has sigstore disabled and no cosign
binary is installable here, so the cosign path is checked against its documented
structure (tag naming, payload JSON, the annotation, ECDSA P-256 with ``cryptography``,
the encrypted key PEM, go-securesystemslib's own test vector) and by round trips.
Every refusal is checked to leave nothing stored.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from dockyard.testing.cli import Dockyard
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root


class Keyring(NamedTuple):
    home: Path  # GNUPGHOME with both secret keys
    trusted: str  # fingerprint of the key the policy trusts
    other: str  # a key it does not
    trusted_pub: Path  # the trusted key's public key, exported

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}


def _gpg(home: Path, *args: str) -> str:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", *args],
                          capture_output=True, text=True, check=True).stdout


def _new_key(home: Path, uid: str) -> str:
    _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = _gpg(home, "--with-colons", "--list-keys", uid)
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    if shutil.which("gpg") is None or shutil.which("skopeo") is None:
        pytest.skip("gpg and skopeo are needed (Debian packages gnupg, skopeo)")
    home = Path(tempfile.mkdtemp(prefix="dy-gpg-"))  # short: the agent's socket lives here
    home.chmod(0o700)
    try:
        trusted = _new_key(home, "Dockyard Trusted <trusted@example.invalid>")
        other = _new_key(home, "Dockyard Other <other@example.invalid>")
        pub = home / "trusted.gpg"
        pub.write_text(_gpg(home, "--armor", "--export", trusted))
        yield Keyring(home, trusted, other, pub)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


class Trust(NamedTuple):
    policy: Path
    registries_d: Path
    lookaside: Path

    def args(self) -> tuple[str, ...]:
        return ("--policy", str(self.policy), "--registries.d", str(self.registries_d))


def _trust(tmp_path: Path, registry: Registry, scopes: dict[str, Any],
           attachments: bool = False) -> Trust:
    store = tmp_path / "sigstore"
    regd = tmp_path / "registries.d"
    regd.mkdir()
    extra = "    use-sigstore-attachments: true\n" if attachments else ""
    (regd / "test.yaml").write_text(f"docker:\n  {registry.address}:\n"
                                    f"    lookaside: file://{store}\n{extra}")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}],
                                  "transports": {"docker": scopes}}))
    return Trust(policy, regd, store)


def _gpg_trust(tmp_path: Path, registry: Registry, keyring: Keyring) -> Trust:
    signed = [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(keyring.trusted_pub)}]
    return _trust(tmp_path, registry, {
        registry.address: signed,
        f"{registry.address}/open": [{"type": "insecureAcceptAnything"}],
        f"{registry.address}/closed/box:v1": [{"type": "reject"}],
    })


@contextlib.contextmanager
def _http_directory(directory: Path) -> Iterator[str]:
    """``directory`` served over HTTP on 127.0.0.1 (its URL) while the block runs."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _nothing_stored(dy: Dockyard, root: Path) -> None:
    assert dy("images", "-q", root=root).stdout.strip() == ""
    blobs = root / "content"
    stored = [p for p in blobs.rglob("*") if p.is_file()] if blobs.exists() else []
    assert stored == [], stored


def _manifest(registry: Registry, repository: str, ref: str) -> tuple[str, bytes]:
    response = httpx.get(f"http://{registry.address}/v2/{repository}/manifests/{ref}",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                  "application/vnd.docker.distribution.manifest.v2+json, "
                                  "application/vnd.oci.image.index.v1+json"})
    response.raise_for_status()
    return f"sha256:{hashlib.sha256(response.content).hexdigest()}", response.content


def _skopeo(*args: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=check,
                          env={**os.environ, **(env or {})}, timeout=120)


# --- GPG simple signing ------------------------------------------------------------------
def test_push_sign_by_is_accepted_by_skopeo_and_unsigned_refused(
        box: Dockyard, registry: Registry, keyring: Keyring, tmp_path: Path) -> None:
    trust = _gpg_trust(tmp_path, registry, keyring)
    name = f"{registry.address}/team/box:v1"
    box("tag", "box:1", name)
    pushed = box(*trust.args(), "push", "--sign-by", keyring.trusted, name, env=keyring.env)
    digest, manifest = _manifest(registry, "team/box", "v1")
    assert digest in pushed.stdout
    signature = trust.lookaside / f"team/box@sha256={digest[7:]}" / "signature-1"
    assert signature.is_file()
    (tmp_path / "manifest.json").write_bytes(manifest)
    verified = _skopeo("standalone-verify", str(tmp_path / "manifest.json"), name,
                       keyring.trusted, str(signature), env=keyring.env)
    assert digest in verified.stdout
    # skopeo copy under the signedBy policy, reading the same lookaside
    copy = ("--policy", str(trust.policy), "--registries.d", str(trust.registries_d), "copy",
            "--src-tls-verify=false")
    _skopeo(*copy, f"docker://{name}", f"dir:{tmp_path / 'copied'}")
    assert (tmp_path / "copied/manifest.json").read_bytes() == manifest
    plain = f"{registry.address}/team/plain:v1"
    box("tag", "box:1", plain)
    box("push", plain)
    refused = _skopeo(*copy, f"docker://{plain}", f"dir:{tmp_path / 'plain'}", check=False)
    assert refused.returncode != 0
    assert "no signature exists" in refused.stderr
    # dockyard's pull agrees both ways, and stores nothing of the refused image
    puller = tmp_path / "puller"
    box(*trust.args(), "pull", name, root=puller)
    denied = box(*trust.args(), "pull", plain, root=tmp_path / "denied", check=False)
    assert denied.returncode != 0
    assert "no signature exists" in denied.stderr
    assert f'transports.docker["{registry.address}"]' in denied.stderr
    _nothing_stored(box, tmp_path / "denied")
    # image sign --sign-by: the image already pushed, now signed, and skopeo accepts it
    box(*trust.args(), "image", "sign", "--sign-by", keyring.trusted, plain, env=keyring.env)
    _skopeo(*copy, f"docker://{plain}", f"dir:{tmp_path / 'plain-signed'}")


def test_skopeo_signed_image_runs_under_policy(box: Dockyard, registry: Registry,
                                               keyring: Keyring, tmp_path: Path) -> None:
    trust = _gpg_trust(tmp_path, registry, keyring)
    archive = tmp_path / "box.tar"
    box("save", "-o", str(archive), "box:1")
    name = f"{registry.address}/skopeo/box:v1"
    (trust.registries_d / "test.yaml").write_text(  # skopeo writes to the staging URL
        f"docker:\n  {registry.address}:\n    lookaside: file://{trust.lookaside}\n"
        f"    lookaside-staging: file://{trust.lookaside}\n")
    _skopeo("--registries.d", str(trust.registries_d), "copy", "--dest-tls-verify=false",
            "--sign-by", keyring.trusted, f"docker-archive:{archive}", f"docker://{name}",
            env=keyring.env)
    plain = f"{registry.address}/skopeo/plain:v1"
    _skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{plain}")
    runner = Dockyard(tmp_path / "runner", tmp_path / "docker-config")
    try:
        never = runner(*trust.args(), "run", "--pull", "never", name, "true", check=False)
        assert never.returncode == 125 and "No such image" in never.stderr
        refused = runner(*trust.args(), "run", "--rm", plain, "true", check=False)
        assert refused.returncode == 125 and "no signature exists" in refused.stderr
        _nothing_stored(runner, tmp_path / "runner")
        ran = runner(*trust.args(), "run", "--rm", name, "echo", "signed and running")
        assert ran.stdout.strip() == "signed and running"
        assert "Unable to find image" in ran.stderr
    finally:
        runner.remove_everything()


def test_refusals_name_the_rule_and_store_nothing(box: Dockyard, registry: Registry,
                                                  keyring: Keyring, tmp_path: Path) -> None:
    trust = _gpg_trust(tmp_path, registry, keyring)
    other_name = f"{registry.address}/team/other:v1"
    good_name = f"{registry.address}/team/good:v1"
    box("tag", "box:1", other_name)
    box(*trust.args(), "push", "--sign-by", keyring.other, other_name, env=keyring.env)
    # a tampered image: another manifest pushed over a signed tag, the signature copied
    # to it (the same identity: only the signed digest tells them apart)
    box("build", "-t", good_name, "-", input=b"FROM box:1\nLABEL x=1\n")
    tampered = f"{registry.address}/team/tampered:v1"
    box("tag", good_name, tampered)
    box(*trust.args(), "push", "--sign-by", keyring.trusted, tampered, env=keyring.env)
    box(*trust.args(), "push", "--sign-by", keyring.trusted, good_name, env=keyring.env)
    signed_digest, _ = _manifest(registry, "team/tampered", "v1")
    box("tag", "box:1", tampered)
    box("push", tampered)
    tampered_digest, _ = _manifest(registry, "team/tampered", "v1")
    assert tampered_digest != signed_digest
    target = trust.lookaside / f"team/tampered@sha256={tampered_digest[7:]}"
    target.mkdir(parents=True)
    shutil.copy(trust.lookaside / f"team/tampered@sha256={signed_digest[7:]}/signature-1",
                target / "signature-1")
    cases = {other_name: "which the policy does not trust",
             tampered: "Signature for a different manifest"}
    for ref, why in cases.items():
        root = tmp_path / f"pull-{ref.rsplit('/', 1)[1]}"
        result = box(*trust.args(), "pull", ref, root=root, check=False)
        assert result.returncode != 0 and why in result.stderr, result.stderr
        assert "signedBy" in result.stderr and str(trust.policy) in result.stderr
        _nothing_stored(box, root)
    # most specific scope wins: a reject for one tag, anything for a namespace
    closed = f"{registry.address}/closed/box:v1"
    opened = f"{registry.address}/open/box:v1"
    for ref in (closed, opened):
        box("tag", "box:1", ref)
        box("push", ref)
    root = tmp_path / "closed"
    result = box(*trust.args(), "pull", closed, root=root, check=False)
    assert result.returncode != 0 and "rejected by policy" in result.stderr
    assert f'transports.docker["{closed}"]' in result.stderr
    _nothing_stored(box, root)
    box(*trust.args(), "pull", opened, root=tmp_path / "opened")
    box(*trust.args(), "pull", good_name, root=tmp_path / "good")
    # the lookaside read over HTTP (a 127.0.0.1 server over the same directory)
    with _http_directory(trust.lookaside) as url:
        (trust.registries_d / "test.yaml").write_text(
            f"docker:\n  {registry.address}:\n    lookaside: {url}\n")
        box(*trust.args(), "pull", good_name, root=tmp_path / "good-http")
        result = box(*trust.args(), "pull", tampered, root=tmp_path / "tampered-http",
                     check=False)
        assert result.returncode != 0 and "different manifest" in result.stderr
        _nothing_stored(box, tmp_path / "tampered-http")
    (trust.registries_d / "test.yaml").write_text(
        f"docker:\n  {registry.address}:\n    lookaside: file://{trust.lookaside}\n")
    # build's FROM obeys the policy too (it pulls what is not here)
    builder = tmp_path / "builder"
    built = box(*trust.args(), "build", "-t", "x:1", "-", root=builder, check=False,
                input=f"FROM {other_name}\n".encode())
    assert built.returncode != 0 and "which the policy does not trust" in built.stderr
    _nothing_stored(box, builder)
    # without a policy file, nothing changes: everything is accepted
    box("pull", other_name, root=tmp_path / "no-policy")


# --- cosign -------------------------------------------------------------------------------
# go-securesystemslib's own test vector (encrypted/encrypted_test.go, TestDecrypt): the
# document format cosign.key wraps, decrypting to "reallyimportant" with "supersecret"
SSL_VECTOR = (b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":'
              b'"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":'
              b'"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":'
              b'"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}')


def _open_cosign_key(pem: bytes, password: bytes) -> Any:
    """Independently of dockyard's code: PEM → JSON → scrypt (hashlib) → secretbox →
    PKCS#8 → an ECDSA key."""
    import nacl.secret
    from cryptography.hazmat.primitives import serialization

    lines = pem.decode().strip().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    params = doc["kdf"]["params"]
    key = hashlib.scrypt(password, salt=base64.b64decode(doc["kdf"]["salt"]), n=params["N"],
                         r=params["r"], p=params["p"], dklen=32, maxmem=64 << 20)
    der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                             base64.b64decode(doc["cipher"]["nonce"]))
    return serialization.load_der_private_key(der, None)


def test_cosign_key_format() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from dockyard.errors import PermissionDenied
    from dockyard.registry.trust import cosign

    assert cosign.decrypt(SSL_VECTOR, b"supersecret") == b"reallyimportant"
    with pytest.raises(PermissionDenied):
        cosign.decrypt(SSL_VECTOR, b"wrong")
    pair = cosign.generate(b"pw")
    private = _open_cosign_key(pair.private_pem, b"pw")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp256r1"
    public = serialization.load_pem_public_key(pair.public_pem)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert pair.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert public.public_numbers() == private.public_key().public_numbers()
    with pytest.raises(PermissionDenied):
        cosign.load_private(pair.private_pem, b"not it")


def _cosign_keys(box: Dockyard, where: Path, password: str) -> tuple[Path, Path]:
    where.mkdir()
    prefix = where / "cosign"
    box("image", "keygen", "--output-key-prefix", str(prefix),
        env={"COSIGN_PASSWORD": password})
    return prefix.with_suffix(".key"), prefix.with_suffix(".pub")


def test_cosign_sign_verify_and_policy(box: Dockyard, registry: Registry,
                                       tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key, pub = _cosign_keys(box, tmp_path / "keys", "s3cret")
    other_key, other_pub = _cosign_keys(box, tmp_path / "other-keys", "")
    assert (key.stat().st_mode & 0o777) == 0o600
    name = f"{registry.address}/cos/box:v1"
    box("tag", "box:1", name)
    box("push", name)
    digest, _ = _manifest(registry, "cos/box", "v1")
    box("image", "sign", "--key", str(key), name, env={"COSIGN_PASSWORD": "s3cret"})
    # cosign's structure: the sha256-<hex>.sig tag, one simplesigning layer, the annotation
    tag = f"sha256-{digest[7:]}.sig"
    tags = httpx.get(f"http://{registry.address}/v2/cos/box/tags/list").json()["tags"]
    assert tag in tags
    _, raw = _manifest(registry, "cos/box", tag)
    sig_manifest = json.loads(raw)
    assert sig_manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    [layer] = sig_manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = httpx.get(f"http://{registry.address}/v2/cos/box/blobs/{layer['digest']}"
                        ).content
    assert json.loads(payload) == {
        "critical": {"identity": {"docker-reference": f"{registry.address}/cos/box"},
                     "image": {"docker-manifest-digest": digest},
                     "type": "cosign container image signature"},
        "optional": None}
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    public = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))  # raises if wrong
    # the OCI 1.1 referrer, listed by the referrers tag schema (docker-registry has no API)
    _, raw_index = _manifest(registry, "cos/box", f"sha256-{digest[7:]}")
    [entry] = json.loads(raw_index)["manifests"]
    assert entry["artifactType"] == "application/vnd.dev.cosign.artifact.sig.v1+json"
    _, raw_referrer = _manifest(registry, "cos/box", entry["digest"])
    referrer = json.loads(raw_referrer)
    assert referrer["subject"]["digest"] == digest
    assert referrer["layers"] == [layer]
    # verify: the right key passes with the payload on stdout, another key fails
    verified = box("image", "verify", "--key", str(pub), name)
    assert json.loads(verified.stdout)[0]["critical"]["image"][
        "docker-manifest-digest"] == digest
    wrong = box("image", "verify", "--key", str(other_pub), name, check=False)
    assert wrong.returncode != 0 and "no matching signatures" in wrong.stderr
    # the policy: sigstoreSigned by the key, cosign's identity (the repository) accepted
    trust = _trust(tmp_path, registry, {registry.address: [{
        "type": "sigstoreSigned", "keyPath": str(pub),
        "signedIdentity": {"type": "matchRepository"}}]}, attachments=True)
    box(*trust.args(), "pull", name, root=tmp_path / "cos-ok")
    unsigned = f"{registry.address}/cos/unsigned:v1"
    by_other = f"{registry.address}/cos/other:v1"
    tampered = f"{registry.address}/cos/tampered:v1"
    box("build", "-t", by_other, "-", input=b"FROM box:1\nLABEL other=1\n")
    box("build", "-t", tampered, "-", input=b"FROM box:1\nLABEL tampered=1\n")
    for ref in (unsigned, by_other, tampered):
        if ref == unsigned:
            box("tag", "box:1", ref)
        box("push", ref)
    box("image", "sign", "--key", str(other_key), by_other, env={"COSIGN_PASSWORD": ""})
    # a tampered image: another manifest pushed over a signed tag, the signature manifest
    # copied to its .sig tag (the same identity: only the signed digest differs)
    signed_digest, _ = _manifest(registry, "cos/tampered", "v1")
    box("image", "sign", "--key", str(key), tampered, env={"COSIGN_PASSWORD": "s3cret"})
    _, signed_sig = _manifest(registry, "cos/tampered", f"sha256-{signed_digest[7:]}.sig")
    box("tag", "box:1", tampered)
    box("push", tampered)
    tampered_digest, _ = _manifest(registry, "cos/tampered", "v1")
    assert tampered_digest != signed_digest
    httpx.put(f"http://{registry.address}/v2/cos/tampered/manifests/"
              f"sha256-{tampered_digest[7:]}.sig", content=signed_sig,
              headers={"Content-Type": sig_manifest["mediaType"]}).raise_for_status()
    cases = {unsigned: "no signature exists", by_other: "does not verify with the key",
             tampered: "Signature for a different manifest"}
    for ref, why in cases.items():
        root = tmp_path / f"cos-{ref.rsplit('/', 1)[1].split(':')[0]}"
        result = box(*trust.args(), "pull", ref, root=root, check=False)
        assert result.returncode != 0 and why in result.stderr, result.stderr
        assert "sigstoreSigned" in result.stderr
        _nothing_stored(box, root)
    # matchRepoDigestOrExact (the default) wants the tag cosign's identity lacks
    (tmp_path / "strict").mkdir()
    strict = _trust(tmp_path / "strict", registry, {registry.address: [{
        "type": "sigstoreSigned", "keyPath": str(pub)}]}, attachments=True)
    result = box(*strict.args(), "pull", name, root=tmp_path / "strict-root", check=False)
    assert result.returncode != 0 and "is not accepted" in result.stderr


def test_gpg_verifier_on_hostile_input(keyring: Keyring, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    from dockyard.errors import InvalidArgument
    from dockyard.registry.trust import gpg
    from dockyard.registry.trust.payload import InvalidSignature

    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    signed = gpg.sign(b'{"x": 1}', keyring.trusted)
    by_other = gpg.sign(b'{"x": 1}', keyring.other)
    with gpg.Verifier([keyring.trusted_pub.read_bytes()]) as verifier:
        assert verifier.verify(signed) == (b'{"x": 1}', keyring.trusted)
        with pytest.raises(InvalidSignature, match="does not trust"):
            verifier.verify(by_other)
        for garbage in (b"", b"\x00" * 64, os.urandom(512), signed[:-8]):
            with pytest.raises(InvalidSignature):
                verifier.verify(garbage)
    with pytest.raises(InvalidArgument, match="no OpenPGP public key"), \
            gpg.Verifier([b"not a key"]):
        pass
    with pytest.raises(InvalidArgument, match="signing with key"):
        gpg.sign(b"x", "0" * 40)
