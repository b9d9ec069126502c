"""The signature policy's pure parts: scopes, identities, strict reading of
containers-policy.json and registries.d, the payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci import reference
from dockyard.registry.trust import lookaside, payload
from dockyard.registry.trust.policy import Gate, Identity, Policy, PolicyDenied, identity_matches

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _policy(tmp_path: Path, doc: object) -> Policy:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return Policy.load(path)


def test_most_specific_scope_wins(tmp_path: Path) -> None:
    accept = [{"type": "insecureAcceptAnything"}]
    reject = [{"type": "reject"}]
    policy = _policy(tmp_path, {"default": reject, "transports": {"docker": {
        "": accept, "reg.example.com:5000": reject, "reg.example.com:5000/team": accept,
        "reg.example.com:5000/team/app:v1": reject, "*.example.org": reject},
        "docker-daemon": {"": accept}}})

    def scope(text: str) -> str:
        return policy.requirements_for(reference.parse(text))[0]

    assert scope("reg.example.com:5000/team/app:v1") == \
        'transports.docker["reg.example.com:5000/team/app:v1"]'
    assert scope("reg.example.com:5000/team/app:v2") == \
        'transports.docker["reg.example.com:5000/team"]'
    assert scope("reg.example.com:5000/other/app") == 'transports.docker["reg.example.com:5000"]'
    assert scope("a.b.example.org/x") == 'transports.docker["*.example.org"]'
    assert scope("busybox") == 'transports.docker[""]'
    no_docker = _policy(tmp_path, {"default": reject})
    assert no_docker.requirements_for(reference.parse("busybox"))[0] == "default"


def test_scope_names_order() -> None:
    names = lookaside.scope_names(reference.parse("a.example.com:5000/ns/sub/repo:t"))
    assert names == ["a.example.com:5000/ns/sub/repo:t", "a.example.com:5000/ns/sub/repo",
                     "a.example.com:5000/ns/sub", "a.example.com:5000/ns",
                     "a.example.com:5000", "*.example.com", "*.com"]
    assert lookaside.scope_names(reference.parse(f"busybox@{DIGEST}"))[:2] == [
        f"docker.io/library/busybox@{DIGEST}", "docker.io/library/busybox"]


@pytest.mark.parametrize(("doc", "error"), [
    ({}, "a default is required"),
    ({"default": []}, "non-empty list"),
    ({"default": [{"type": "nope"}]}, "unknown requirement type"),
    ({"default": [{"type": "reject", "extra": 1}]}, "unknown field"),
    ({"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}, "exactly one of"),
    ({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "!!"}]},
     "not base64"),
    ({"default": [{"type": "reject"}], "transports": {"docker": {"x": []}}}, "non-empty"),
    ({"default": [{"type": "insecureAcceptAnything"}], "extra": {}}, "unknown field"),
    ({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "eA==",
                   "signedIdentity": {"type": "exactReference",
                                      "dockerReference": "busybox"}}]}, "tag or digest"),
])
def test_bad_policies_are_refused(tmp_path: Path, doc: object, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        _policy(tmp_path, doc)


def test_key_files_are_read_when_needed(tmp_path: Path) -> None:
    """As containers/image (Fedora's default policy names Red Hat's key file for
    registry.redhat.io): a scope's missing key file does not stop other scopes."""
    policy = _policy(tmp_path, {"default": [{"type": "insecureAcceptAnything"}],
                                "transports": {"docker": {"reg:5000": [{
                                    "type": "signedBy", "keyType": "GPGKeys",
                                    "keyPath": "/nonexistent/key.gpg"}]}}})
    scope, [requirement] = policy.requirements_for(reference.parse("reg:5000/app:v1"))
    with pytest.raises(InvalidArgument, match="/nonexistent/key.gpg: No such file"):
        requirement.load_keys()
    assert policy.requirements_for(reference.parse("busybox"))[0] == "default"


def test_unsupported_requirements_refuse_their_scope_only(tmp_path: Path) -> None:
    """Read, not refused as a file: a system policy with a fulcio scope still lets
    other scopes pull; images of that scope are refused with the reason."""
    policy = _policy(tmp_path, {"default": [{"type": "insecureAcceptAnything"}],
                                "transports": {"docker": {
                                    "a.example": [{"type": "signedBy",
                                                   "keyType": "X509Certificates",
                                                   "keyData": "eA=="}],
                                    "b.example": [{"type": "sigstoreSigned", "fulcio": {}}],
                                    "c.example": [{"type": "signedBaseLayer"}]}}})
    gate = Gate(policy, lookaside.RegistriesD(None, {}))
    for scope, reason in (("a", "X509Certificates"), ("b", "fulcio"),
                          ("c", "signedBaseLayer")):
        ref = reference.parse(f"{scope}.example/app:v1")
        [requirement] = policy.requirements_for(ref)[1]
        assert reason in requirement.unsupported
        with pytest.raises(PolicyDenied, match=reason):
            gate.admit(None, ref, [DIGEST])  # type: ignore[arg-type]
    gate.admit(None, reference.parse("d.example/app:v1"), [DIGEST])  # type: ignore[arg-type]


def test_identities() -> None:
    tagged = reference.parse("reg:5000/team/app:v1")
    by_digest = reference.parse(f"reg:5000/team/app@{DIGEST}")
    default = Identity("matchRepoDigestOrExact")
    assert identity_matches(default, tagged, "reg:5000/team/app:v1")
    assert not identity_matches(default, tagged, "reg:5000/team/app:v2")
    assert not identity_matches(default, tagged, "reg:5000/team/app")  # cosign's, name only
    latest = reference.parse("reg:5000/team/app")  # :latest implied; a signature is exact
    assert not identity_matches(default, latest, "reg:5000/team/app")
    assert not identity_matches(Identity("matchExact"), latest, "reg:5000/team/app")
    assert identity_matches(default, latest, "reg:5000/team/app:latest")
    assert identity_matches(default, by_digest, "reg:5000/team/app:anything")
    assert not identity_matches(default, by_digest, "reg:5000/team/other:v1")
    assert identity_matches(Identity("matchExact"), tagged, "reg:5000/team/app:v1")
    assert not identity_matches(Identity("matchExact"), by_digest, "reg:5000/team/app:v1")
    assert identity_matches(Identity("matchRepository"), tagged, "reg:5000/team/app")
    assert not identity_matches(Identity("matchRepository"), tagged, "reg:5000/team/x:v1")
    exact = Identity("exactReference", "reg:5000/signed/app:v9")
    assert identity_matches(exact, tagged, "reg:5000/signed/app:v9")
    assert not identity_matches(exact, tagged, "reg:5000/team/app:v1")
    repo = Identity("exactRepository", "reg:5000/signed/app")
    assert identity_matches(repo, tagged, "reg:5000/signed/app:v3")
    remap = Identity("remapIdentity", "mirror:5000/team", "reg:5000/team")
    assert identity_matches(remap, reference.parse("mirror:5000/team/app:v1"),
                            "reg:5000/team/app:v1")
    assert not identity_matches(remap, reference.parse("mirror:5000/teamx/app:v1"),
                                "reg:5000/team/app:v1")
    assert not identity_matches(default, tagged, "NOT A REFERENCE")


def test_registries_d(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "default-docker:\n  lookaside: https://sigs.example.com\n"
        "docker:\n  reg:5000/team:\n    sigstore: file:///old\n"
        "    sigstore-staging: file:///stage\n    use-sigstore-attachments: true\n")
    (tmp_path / "b.yaml").write_text("docker:\n  reg:5000:\n    lookaside: file:///reg\n")
    (tmp_path / "ignored.txt").write_text("not: [yaml")
    config = lookaside.RegistriesD.load(tmp_path)
    team = reference.parse("reg:5000/team/app:v1")
    assert config.base_url(team, write=False) == "file:///old"
    assert config.base_url(team, write=True) == "file:///stage"
    assert config.base_url(reference.parse("reg:5000/x:v1"), write=True) == "file:///reg"
    assert config.base_url(reference.parse("busybox"), write=False) == \
        "https://sigs.example.com"
    assert config.use_attachments(team)
    assert not config.use_attachments(reference.parse("busybox"))
    assert lookaside.signature_url("file:///reg/", team, DIGEST, 2) == \
        f"file:///reg/team/app@sha256={'ab' * 32}/signature-2"
    (tmp_path / "c.yaml").write_text("docker:\n  reg:5000:\n    lookaside: file:///twice\n")
    with pytest.raises(InvalidArgument, match="set twice"):
        lookaside.RegistriesD.load(tmp_path)
    (tmp_path / "c.yaml").write_text("docker:\n  other:\n    lookasid: file:///typo\n")
    with pytest.raises(InvalidArgument, match="unknown keys"):
        lookaside.RegistriesD.load(tmp_path)


def test_payloads_round_trip_and_strictness() -> None:
    data = payload.gpg_payload("reg:5000/app:v1", DIGEST, "dockyard")
    claims = payload.parse(data, payload.GPG_TYPE)
    assert (claims.docker_reference, claims.manifest_digest) == ("reg:5000/app:v1", DIGEST)
    with pytest.raises(payload.InvalidSignature, match="type"):
        payload.parse(data, payload.COSIGN_TYPE)
    cosign = payload.cosign_payload("reg:5000/app", OTHER)
    assert cosign.startswith(b'{"critical":{"identity":{"docker-reference":"reg:5000/app"},'
                             b'"image":{"docker-manifest-digest":"sha256:')
    doc = json.loads(cosign)
    doc["critical"]["extra"] = 1
    with pytest.raises(payload.InvalidSignature, match="keys"):
        payload.parse(json.dumps(doc).encode(), payload.COSIGN_TYPE)
    doc = json.loads(cosign)
    doc["critical"]["image"]["docker-manifest-digest"] = "sha256:nothex"
    with pytest.raises(payload.InvalidSignature, match="digest"):
        payload.parse(json.dumps(doc).encode(), payload.COSIGN_TYPE)
