"""A catalog written as SPDX 2.3 JSON (``spdx-tools``) or CycloneDX 1.6 JSON
(``cyclonedx-python-lib``), from each library's typed model.  Their validators
(below) are what the tests hold every document to; they are not run on every
``sbom``: both are quadratic in the number of packages (spdx-tools' relationship
checks, jsonschema's ``uniqueItems``: ~5 s and ~10 s for 900 packages).  The
libraries are imported here only, so only ``sbom``/``build --sbom`` pay for them."""

from __future__ import annotations

import datetime
import io
import uuid
from typing import NamedTuple

from dockyard.errors import InternalError, InvalidArgument
from dockyard.images.sbom.catalog import Catalog

FORMATS = ("spdx-json", "cyclonedx-json")
MEDIA_TYPES = {"spdx-json": "application/spdx+json",
               "cyclonedx-json": "application/vnd.cyclonedx+json"}
TOOL = "dockyard-0.1.0"


class Subject(NamedTuple):
    """The image an SBOM describes."""

    name: str  # the reference as the user gave it
    image_id: str  # config digest
    manifest_digest: str


def render(catalog: Catalog, subject: Subject, fmt: str, *,
           created: datetime.datetime | None = None) -> bytes:
    created = created or datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    if fmt == "spdx-json":
        return spdx_json(catalog, subject, created)
    if fmt == "cyclonedx-json":
        return cyclonedx_json(catalog, subject, created)
    raise InvalidArgument(f"unknown SBOM format {fmt!r} (use one of: {', '.join(FORMATS)})")


def _spdx_id(index: int) -> str:
    return f"SPDXRef-Package-{index}"


def spdx_json(catalog: Catalog, subject: Subject, created: datetime.datetime) -> bytes:
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.model import (
        Package as SpdxPackage,
    )
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    info = CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=subject.name,
        document_namespace=f"https://dockyard.invalid/spdx/{subject.image_id.split(':')[-1]}"
                           f"-{uuid.uuid4()}",
        creators=[Actor(ActorType.TOOL, TOOL)], created=created,
        creator_comment=_notes_comment(catalog))
    image = SpdxPackage(
        "SPDXRef-Image", subject.name, SpdxNoAssertion(), version=subject.manifest_digest,
        files_analyzed=False, primary_package_purpose=PackagePurpose.CONTAINER,
        comment=f"image ID {subject.image_id}")
    packages = [image]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES,
                                  "SPDXRef-Image")]
    for index, package in enumerate(catalog.packages, 1):
        packages.append(SpdxPackage(
            _spdx_id(index), package.name, SpdxNoAssertion(), version=package.version,
            files_analyzed=False, license_declared=SpdxNoAssertion(),
            source_info=f"found in {package.location}",
            external_references=[ExternalPackageRef(
                ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl)]))
        relationships.append(Relationship("SPDXRef-Image", RelationshipType.CONTAINS,
                                          _spdx_id(index)))
    document = Document(info, packages=packages, relationships=relationships)
    out = io.StringIO()
    write_document_to_stream(document, out, validate=False)
    return out.getvalue().encode()


def _notes_comment(catalog: Catalog) -> str | None:
    return "; ".join(catalog.notes) if catalog.notes else None


def cyclonedx_json(catalog: Catalog, subject: Subject, created: datetime.datetime) -> bytes:
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.dependency import Dependency
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    image = Component(name=subject.name, type=ComponentType.CONTAINER,
                      version=subject.manifest_digest, bom_ref="image",
                      properties=[Property(name="dockyard:image-id", value=subject.image_id)])
    bom = Bom(metadata=BomMetaData(component=image, timestamp=created,
                                   properties=[Property(name="dockyard:note", value=note)
                                               for note in catalog.notes]))
    bom.serial_number = uuid.uuid4()
    licences = LicenseFactory()
    components = [Component(
        name=package.name, version=package.version, type=ComponentType.LIBRARY,
        purl=PackageURL.from_string(package.purl), bom_ref=f"pkg-{index}",
        # what the package says: an SPDX id or expression where it is one, else a name
        licenses=[licences.make_from_string(package.license)] if package.license else None,
        properties=[Property(name="dockyard:location", value=package.location)])
        for index, package in enumerate(catalog.packages, 1)]
    bom.components.update(components)
    # the dependency graph as data (the image depends on every package; packages on
    # nothing): Bom.register_dependency looks each one up linearly, 3 s for 900
    bom.dependencies.update([Dependency(ref=image.bom_ref, dependencies=[
        Dependency(ref=c.bom_ref) for c in components])] +
        [Dependency(ref=c.bom_ref) for c in components])
    return JsonV1Dot6(bom).output_as_string(indent=2).encode()


def validate_cyclonedx(text: str) -> None:
    """The CycloneDX library's own JSON-schema validation (strict, 1.6)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise InternalError(f"the CycloneDX document does not validate: {error}")


def validate_spdx_json(text: str) -> list[str]:
    """Problems spdx-tools finds in an SPDX JSON document (parsed by its own parser)."""
    import tempfile

    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    with tempfile.NamedTemporaryFile("w", suffix=".spdx.json") as handle:
        handle.write(text)
        handle.flush()
        document = parse_file(handle.name)
    return [m.validation_message for m in validate_full_spdx_document(document)]
