"""Supply chain services over the engine: an image's SBOM, its attachment as a
referrer, the vulnerability scan and hardening lint, and digest pinning.

The SBOM and scan libraries (spdx-tools, cyclonedx-python-lib, packaging) are
imported inside the methods that need them: no other command pays for them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dockyard.errors import InvalidArgument, NotFound
from dockyard.oci import reference

if TYPE_CHECKING:
    from dockyard.engine.builds import BuildRequest
    from dockyard.engine.engine import Engine
    from dockyard.engine.images import ImageService
    from dockyard.images.index import ImageRecord
    from dockyard.images.referrers import Referrer, ReferrerIndex
    from dockyard.images.sbom.catalog import Catalog
    from dockyard.images.scan.report import ScanResult


def pinned_reference(images: ImageService, text: str, *, keep_tag: bool = False,
                     manifest_digest: str | None = None) -> str:
    """``text`` (a local image's name) as ``name@sha256:…``: the digest the registry
    knows it by when it was pulled or pushed under that name, else the digest of its
    manifest here (which ``run``/``FROM`` here resolve too).  ``keep_tag`` gives
    ``name:tag@sha256:…`` (the tag is then only a comment: the digest decides).
    ``manifest_digest`` names the image instead of what ``text`` points at now (a
    container's image, when the tag has moved since)."""
    record = images.index.get(manifest_digest) if manifest_digest else images.get(text)
    if record is None:
        from dockyard.errors import ImageNotFound

        raise ImageNotFound(f"{text}@{manifest_digest}")
    ref = reference.parse(text)
    digest = ref.digest
    if digest is None:
        registry = [d.split("@", 1)[1] for d in images.index.repo_digests_of(
            record.manifest_digest) if d.split("@", 1)[0] == ref.name]
        digest = registry[0] if registry else record.manifest_digest
    name = ref.familiar if ref.registry == reference.DEFAULT_REGISTRY else ref.name
    if keep_tag and ref.tag:
        name += f":{ref.tag}"
    return f"{name}@{digest}"


_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[0-9a-f]{12,64}")
_FROM_RE = re.compile(r"^(\s*FROM\s+(?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE)


class PinChange(NamedTuple):
    line: int
    before: str
    after: str  # "" when the base is not here (a stage the build did not need)


class SupplyChain:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- SBOM -------------------------------------------------------------------
    def catalog(self, ref: str) -> tuple[ImageRecord, Catalog]:
        from dockyard.images.sbom.catalog import collect

        record = self.engine.images.get(ref)
        with self.engine.builds.image_rootfs(record.config_digest) as rootfs:
            return record, collect(rootfs)

    def sbom(self, ref: str, fmt: str) -> tuple[bytes, list[str]]:
        """The SBOM document of ``ref`` and the notes on what was skipped."""
        from dockyard.images.sbom.formats import FORMATS, Subject, render

        if fmt not in FORMATS:
            raise InvalidArgument(f"unknown SBOM format {fmt!r} (use one of: "
                                  f"{', '.join(FORMATS)})")
        record, catalog = self.catalog(ref)
        subject = Subject(ref, record.config_digest, record.manifest_digest)
        return render(catalog, subject, fmt), catalog.notes

    @property
    def referrers(self) -> ReferrerIndex:
        from dockyard.images.referrers import ReferrerIndex

        return ReferrerIndex(self.engine.db)

    def attach_sbom(self, ref: str, fmt: str = "spdx-json") -> Referrer:
        """Store the SBOM of ``ref`` as an OCI artifact whose subject is its manifest."""
        from dockyard.images.referrers import attach
        from dockyard.images.sbom.formats import MEDIA_TYPES
        from dockyard.oci.image import Descriptor

        document, _notes = self.sbom(ref, fmt)
        record = self.engine.images.get(ref)
        subject = Descriptor(record.media_type, record.manifest_digest,
                             self.engine.images.content.size(record.manifest_digest))
        return attach(self.engine.images.content, self.referrers, subject, MEDIA_TYPES[fmt],
                      document, {"org.opencontainers.image.description": f"SBOM ({fmt}) by "
                                 "dockyard"})

    # --- scan -------------------------------------------------------------------
    def scan(self, ref: str, db: str | None) -> ScanResult:
        from dockyard.images.sbom.catalog import collect
        from dockyard.images.scan import lint, osv
        from dockyard.images.scan.report import ScanResult
        from dockyard.oci import mediatypes as mt
        from dockyard.snapshots.layer_stream import decompressed

        records = osv.load(db) if db else []  # a bad database fails before any mount
        images = self.engine.images
        record = images.get(ref)
        config = images.config(record)
        findings = lint.config_findings(config)
        with self.engine.builds.image_rootfs(record.config_digest) as rootfs:
            catalog = collect(rootfs)
            findings += lint.tree_findings(str(rootfs))
        for number, layer in enumerate(images.manifest(record).layers, 1):
            with images.content.open(layer.digest) as raw:
                findings += lint.layer_findings(
                    number, decompressed(raw, mt.layer_compression(layer.media_type)))
        matches = osv.match(records, catalog.packages)
        notes = list(catalog.notes) + ([] if db else ["no --db given: vulnerabilities not "
                                                      "checked"])
        return ScanResult(ref, record.config_digest, matches, findings, notes)

    # --- pinning ----------------------------------------------------------------
    def pin_dockerfile(self, request: BuildRequest) -> tuple[Path, list[PinChange]]:
        """Rewrite the request's Dockerfile so each ``FROM`` names its base by digest
        (after a build, so every base is here); atomic; returns what changed."""
        from dockyard.build.plan import parse_plan
        from dockyard.engine.builds import dockerfile_path
        from dockyard.store.atomic import atomic_write

        if request.context == "-" or request.dockerfile == "-":
            raise InvalidArgument("--pin rewrites a Dockerfile on disk: give the context "
                                  "as a directory and the Dockerfile as a file")
        path = dockerfile_path(request, Path(request.context))
        text = path.read_text()
        stages = parse_plan(text).stages
        names = {s.name for s in stages if s.name}
        lines = text.split("\n")
        changes = []
        for stage in stages:
            base = stage.base
            match = _FROM_RE.match(lines[stage.line - 1]) if 0 < stage.line <= len(lines) \
                else None
            if match is None or match.group(2) != base or base.lower() == "scratch" or \
                    base.lower() in names or "$" in base or "@" in base or \
                    _IMAGE_ID_RE.fullmatch(base):
                continue  # a stage, a variable, pinned (a digest, an image ID), split lines
            try:
                pinned = pinned_reference(self.engine.images, base, keep_tag=True)
            except NotFound:  # a stage --target did not need: its base was never pulled
                changes.append(PinChange(stage.line, base, ""))
                continue
            lines[stage.line - 1] = match.group(1) + pinned + match.group(3)
            changes.append(PinChange(stage.line, base, pinned))
        if any(change.after for change in changes):
            atomic_write(path, "\n".join(lines).encode(), path.stat().st_mode & 0o7777)
        return path, changes
