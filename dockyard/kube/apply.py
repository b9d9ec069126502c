"""``kube apply``: send objects to a real cluster through the official ``kubernetes``
client — kubeconfig, contexts and namespaces read as kubectl reads them
(``$KUBECONFIG``, a list merged in order, else ``~/.kube/config``) — by server-side
apply (``PATCH`` with ``application/apply-patch+yaml``, ``fieldManager=dockyard``,
``force``), after pushing the images found locally to ``--push-to`` and rewriting
their references to ``REGISTRY/NAME@sha256:…``.

Nothing half-applied: every object first goes through a server-side dry run
(``dryRun=All``); only if the server accepts them all is any applied for real.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from dockyard.errors import ImageNotFound, InvalidArgument, Unavailable

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

FIELD_MANAGER = "dockyard"
CLUSTER_SCOPED = frozenset({"Namespace", "Node", "PersistentVolume", "ClusterRole",
                            "ClusterRoleBinding", "StorageClass", "PriorityClass",
                            "CustomResourceDefinition", "IngressClass", "RuntimeClass"})
IRREGULAR = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies",
             "Ingress": "ingresses", "IngressClass": "ingressclasses",
             "StorageClass": "storageclasses", "PriorityClass": "priorityclasses",
             "RuntimeClass": "runtimeclasses"}


class Target(NamedTuple):
    client: Any  # kubernetes.client.ApiClient
    namespace: str  # the context's namespace (kubectl's default for objects without one)
    context: str


def connect(kubeconfig: str | None, context: str | None) -> Target:
    """The cluster of ``context`` (default: the current one) in the kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        name = context or (current or {}).get("name")
        chosen = next((c for c in contexts if c["name"] == name), None)
        if chosen is None:
            raise InvalidArgument(f'kube apply: context "{name}" does not exist in the '
                                  "kubeconfig")
        config.load_kube_config(config_file=kubeconfig, context=name,
                                client_configuration=configuration, persist_config=False)
    except config.ConfigException as exc:
        raise InvalidArgument(f"kube apply: kubeconfig: {exc}") from exc
    namespace = str((chosen.get("context") or {}).get("namespace") or "default")
    return Target(client.ApiClient(configuration), namespace, str(name))


def path_of(doc: dict[str, Any], namespace: str) -> str:
    """The object's REST path (``/api/v1/namespaces/NS/services/NAME``, …)."""
    group = doc["apiVersion"]
    base = f"/api/{group}" if "/" not in group else f"/apis/{group}"
    plural = plural_of(doc["kind"])
    name = doc["metadata"]["name"]
    if doc["kind"] in CLUSTER_SCOPED:
        return f"{base}/{plural}/{name}"
    where = (doc.get("metadata") or {}).get("namespace") or namespace
    return f"{base}/namespaces/{where}/{plural}/{name}"


def plural_of(kind: str) -> str:
    if kind in IRREGULAR:
        return IRREGULAR[kind]
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def apply(target: Target, documents: list[dict[str, Any]]) -> list[str]:
    """Dry run everything, then apply everything; ``kind/name serverside-applied``
    lines, as kubectl prints them."""
    created = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    for doc in documents:  # a namespace made by this input does not exist yet
        if (doc.get("metadata") or {}).get("namespace") not in created:
            _patch(target, doc, dry_run=True)
    return [_patch(target, doc, dry_run=False) for doc in _ordered(documents)]


def _ordered(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces first (what lives in them needs them), then in input order."""
    return sorted(documents, key=lambda d: d["kind"] != "Namespace")


def _patch(target: Target, doc: dict[str, Any], *, dry_run: bool) -> str:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    ref = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
    try:
        target.client.call_api(
            path_of(doc, target.namespace), "PATCH", query_params=query,
            header_params={"Content-Type": "application/apply-patch+yaml",
                           "Accept": "application/json"},
            body=doc, response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"], _return_http_data_only=True)
    except ApiException as exc:
        message = _server_message(exc)
        cls = Unavailable if (exc.status or 500) >= 500 else InvalidArgument
        step = " (dry run: nothing was applied)" if dry_run else ""
        raise cls(f"kube apply: {ref}: {message}{step}") from exc
    except HTTPError as exc:
        raise Unavailable(f"kube apply: the cluster of context {target.context!r} cannot "
                          f"be reached: {exc}") from exc
    return f"{ref} serverside-applied"


def _server_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    return str(body.get("message") or f"{exc.status} {exc.reason}")


def images_in(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container (and init container) of a Pod or of a workload's template."""
    spec = doc.get("spec") or {}
    pod = spec if doc.get("kind") == "Pod" else ((spec.get("template") or {}).get("spec")
                                                  or (spec.get("jobTemplate") or {}).get(
                                                      "spec", {}).get("template", {}).get(
                                                      "spec") or {})
    for key in ("initContainers", "containers"):
        yield from pod.get(key) or []


def push_images(engine: Engine, documents: list[dict[str, Any]],
                registry: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Push every image the documents name that is in the local store to
    ``registry`` (tagged ``REGISTRY/NAME:TAG`` here, then ``Engine.push_image``) and
    rewrite its references to ``REGISTRY/NAME@sha256:…``; images not found here are
    left as they are."""
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?", registry):
        raise InvalidArgument(f"kube apply: --push-to {registry!r} is not a registry "
                              "(HOST[:PORT][/PATH])")
    out = copy.deepcopy(documents)
    pushed: dict[str, str] = {}
    lines = []
    for doc in out:
        for container in images_in(doc):
            image = str(container["image"])
            if image not in pushed:
                try:
                    record = engine.images.get(image)
                except ImageNotFound:
                    continue
                name = f"{registry}/{_path(image)}"
                engine.images.tag(record.manifest_digest if "@" in image else image,
                                  f"{name}:{_tag(image)}")  # as `docker tag` before a push
                _, digest = engine.push_image(f"{name}:{_tag(image)}")
                pushed[image] = f"{name}@{digest}"
                lines.append(f"pushed {image} as {pushed[image]}")
            container["image"] = pushed[image]
    return out, lines


def _path(image: str) -> str:
    """The repository path of a local image name, without registry, tag or digest."""
    bare = image.split("@")[0]
    head, _, tail = bare.rpartition(":")
    bare = head if head and "/" not in tail else bare
    first, _, rest = bare.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        bare = rest  # a registry host: dropped
    return bare


def _tag(image: str) -> str:
    bare = image.split("@")[0]
    head, _, tail = bare.rpartition(":")
    return tail if head and "/" not in tail else "latest"


def load_documents(texts: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every document of the files, checked against the Kubernetes schemas (a
    cluster takes every kind, so nothing is refused for what ``kube play`` lacks)."""
    import yaml

    from dockyard.kube.load import schema_error

    documents: list[dict[str, Any]] = []
    problems = []
    for source, text in texts:
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"kube apply: {source}: invalid YAML: {exc}") from exc
        for index, doc in enumerate(loaded, 1):
            where = f"{source}#{index}"
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                problems.append(f"{where}: not a Kubernetes object")
                continue
            error = schema_error(doc)
            name = (doc.get("metadata") or {}).get("name")
            if error or not name:
                problems.append(f"{doc['kind']}/{name or '?'} ({where}): "
                                f"{error or 'metadata.name: required'}")
                continue
            documents.append(doc)
    if problems:
        hint = "\n".join(f"  {p}" for p in problems) if len(problems) > 1 else None
        raise InvalidArgument(f"kube apply: {problems[0]}", hint=hint)
    if not documents:
        raise InvalidArgument("kube apply: no objects in the input")
    return documents
