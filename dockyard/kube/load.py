"""Multi-document YAML → validated Kubernetes objects.

Each document is checked against the Kubernetes OpenAPI schemas that the
``kubernetes-validate`` package ships (offline, strict: unknown fields are errors),
then against what dockyard supports: every unsupported kind or field is reported,
one line each, naming the document (``Kind/name``) and the field.  Nothing is
applied unless every document passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument, NotImplementedFeature

K8S_VERSION = "1.37"  # the schemas kube input is checked against (and generate's output)

# kinds that keep `replicas` pods of a template (a DaemonSet: one, on this host)
REPLICATED = ("Deployment", "ReplicaSet", "DaemonSet")
WORKLOADS = (*REPLICATED, "Job")  # kinds with a pod template
SUPPORTED_KINDS = ("Namespace", "Pod", *WORKLOADS, "Service", "ConfigMap", "Secret",
                   "PersistentVolumeClaim")
# fields dockyard lowers; anything else in these objects is reported
POD_FIELDS = frozenset({"containers", "initContainers", "volumes", "restartPolicy", "hostname",
                        "terminationGracePeriodSeconds", "dnsPolicy", "securityContext"})
CONTAINER_FIELDS = frozenset({"name", "image", "command", "args", "env", "envFrom", "ports",
                              "resources", "securityContext", "volumeMounts", "workingDir",
                              "imagePullPolicy", "livenessProbe", "readinessProbe", "startupProbe",
                              "lifecycle",
                              "terminationMessagePath",
                              "terminationMessagePolicy", "stdin", "tty"})
SECURITY_FIELDS = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                             "capabilities", "privileged", "allowPrivilegeEscalation"})
# container defaults, and the pod's own: fsGroup on its volumes, more groups
POD_SECURITY_FIELDS = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup",
                                 "fsGroupChangePolicy", "supplementalGroups"})
PROBE_ACTIONS = ("exec", "httpGet", "tcpSocket", "grpc")
HOOK_ACTIONS = ("exec", "httpGet", "sleep")
VOLUME_FIELDS = frozenset({"name", "configMap", "secret", "persistentVolumeClaim", "emptyDir",
                           "hostPath"})
# the fields of each volume source that are lowered (items, defaultMode, sizeLimit, …: not)
VOLUME_SOURCE_FIELDS = {"configMap": frozenset({"name"}), "secret": frozenset({"secretName"}),
                        "emptyDir": frozenset({"medium"}),
                        "hostPath": frozenset({"path", "type"}),
                        "persistentVolumeClaim": frozenset({"claimName"})}
DEPLOYMENT_FIELDS = frozenset({"replicas", "selector", "template", "strategy"})
WORKLOAD_FIELDS = {"Deployment": DEPLOYMENT_FIELDS, "ReplicaSet": DEPLOYMENT_FIELDS,
                   "DaemonSet": frozenset({"selector", "template", "updateStrategy"}),
                   "Job": frozenset({"template", "completions", "parallelism",
                                     "backoffLimit", "selector", "manualSelector"})}
SERVICE_FIELDS = frozenset({"selector", "ports", "type", "clusterIP"})


class KubeObject(NamedTuple):
    kind: str
    name: str
    namespace: str
    body: dict[str, Any]
    source: str  # "file.yaml#2": where it came from

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def owner(self) -> str:
        """The label value that marks everything made for this object."""
        return f"{self.namespace}.{self.kind}.{self.name}"


def load_files(paths: list[Path]) -> list[KubeObject]:
    """Every document of every file, validated; raises on the first file with errors,
    listing all of its problems."""
    objects: list[KubeObject] = []
    problems: list[str] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from exc
        objects += load_text(text, str(path), problems)
    _check_selectors(objects, problems)
    if problems:
        unsupported = all(p.startswith("unsupported") for p in problems)
        cls = NotImplementedFeature if unsupported else InvalidArgument
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        hint = "every problem, one a line:\n" + "\n".join(f"  {p}" for p in problems)
        raise cls(f"kube: {problems[0]}{more}", hint=hint if more else None)
    return objects


def load_text(text: str, source: str, problems: list[str]) -> list[KubeObject]:
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidArgument(f"kube: {where}: invalid YAML: {problem}") from exc
    objects = []
    for index, doc in enumerate(documents, 1):
        where = f"{source}#{index}"
        obj = _one(doc, where, problems)
        if obj is not None:
            objects.append(obj)
    return objects


def _one(doc: Any, where: str, problems: list[str]) -> KubeObject | None:
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        problems.append(f"{where}: not a Kubernetes object (apiVersion and kind are required)")
        return None
    metadata = doc.get("metadata") or {}
    name = str(metadata.get("name", "")) if isinstance(metadata, dict) else ""
    ref = f"{doc['kind']}/{name or '?'}"
    if doc["kind"] not in SUPPORTED_KINDS:
        problems.append(f"unsupported kind {doc['kind']} ({where}: {ref})")
        return None
    error = schema_error(doc)
    if error:
        problems.append(f"{ref} ({where}): {error}")
        return None
    if not name:
        problems.append(f"{ref} ({where}): metadata.name: required")
        return None
    namespace = str(metadata.get("namespace") or "default")
    obj = KubeObject(doc["kind"], name, namespace, doc, where)
    problems += [f"unsupported field {field} ({where}: {ref})" for field in unsupported(obj)]
    return obj


def schema_error(doc: dict[str, Any]) -> str | None:
    """The schema's complaint about ``doc`` (``field.path: message``), or None."""
    import kubernetes_validate as kv

    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.SchemaNotFoundError as exc:
        return f"no schema for apiVersion {doc.get('apiVersion')}: {exc.message}"
    except kv.ValidationError as exc:
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]"
                        for p in exc.absolute_path).replace(".[", "[")
        return f"{path or '(document)'}: {exc.message}"
    return None


def unsupported(obj: KubeObject) -> list[str]:
    """Dotted paths of the fields of ``obj`` that dockyard does not lower."""
    body = obj.body
    if obj.kind == "Pod":
        return _pod_unsupported(body.get("spec") or {}, "spec")
    if obj.kind in WORKLOADS:
        spec = body.get("spec") or {}
        found = _extra(spec, WORKLOAD_FIELDS[obj.kind], "spec")
        template = spec.get("template") or {}
        pod = template.get("spec") or {}
        if obj.kind == "Job" and pod.get("restartPolicy", "Always") == "Always":
            found.append("spec.template.spec.restartPolicy=Always (a Job's pods: Never or "
                         "OnFailure)")
        return found + _pod_unsupported(pod, "spec.template.spec")
    if obj.kind == "Service":
        spec = body.get("spec") or {}
        found = _extra(spec, SERVICE_FIELDS, "spec")
        if spec.get("type", "ClusterIP") not in ("ClusterIP", "NodePort"):
            found.append(f"spec.type={spec['type']}")
        return found
    return []


def _pod_unsupported(spec: dict[str, Any], at: str) -> list[str]:
    found = _extra(spec, POD_FIELDS, at)
    found += _extra(spec.get("securityContext") or {}, POD_SECURITY_FIELDS,
                    f"{at}.securityContext")
    if spec.get("dnsPolicy", "ClusterFirst") != "ClusterFirst":
        found.append(f"{at}.dnsPolicy={spec['dnsPolicy']}")
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            here = f"{at}.{key}[{i}]"
            found += _extra(container, CONTAINER_FIELDS, here)
            found += _extra(container.get("securityContext") or {}, SECURITY_FIELDS,
                            f"{here}.securityContext")
            if container.get("imagePullPolicy") == "Always":
                found.append(f"{here}.imagePullPolicy=Always (local images only)")
            if key == "initContainers":  # the API server's refusal, in its words
                found += [f"{here}.{field} (Forbidden: may not be set for init containers)"
                          for field in ("lifecycle", "livenessProbe", "readinessProbe",
                                        "startupProbe") if field in container]
            found += _hooks_unsupported(container.get("lifecycle") or {}, here)
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind) or {}
                if probe and not set(PROBE_ACTIONS) & set(probe):
                    found.append(f"{here}.{kind} (exec, httpGet, tcpSocket and grpc probes)")
                if (probe.get("httpGet") or {}).get("scheme", "HTTP") != "HTTP":
                    found.append(f"{here}.{kind}.httpGet.scheme (HTTP only)")
    for i, volume in enumerate(spec.get("volumes") or []):
        found += _extra(volume, VOLUME_FIELDS, f"{at}.volumes[{i}]")
        for source, known in VOLUME_SOURCE_FIELDS.items():
            found += _extra(volume.get(source) or {}, known, f"{at}.volumes[{i}].{source}")
    return found


def _hooks_unsupported(lifecycle: dict[str, Any], here: str) -> list[str]:
    found = []
    for hook, handler in lifecycle.items():
        at = f"{here}.lifecycle.{hook}"
        if "tcpSocket" in (handler or {}):  # the schema takes it; the kubelet fails it
            found.append(f"{at}.tcpSocket (deprecated: \"TCPSocket is NOT supported as a "
                         "LifecycleHandler and kept for backward compatibility\"; the "
                         "kubelet fails such a hook at runtime: \"Cannot run handler: "
                         "invalid handler\")")
        elif not set(HOOK_ACTIONS) & set(handler or {}):
            found.append(f"{at} (exec, httpGet and sleep handlers)")
        if ((handler or {}).get("httpGet") or {}).get("scheme", "HTTP") != "HTTP":
            found.append(f"{at}.httpGet.scheme (HTTP only)")
    return found


def _extra(mapping: dict[str, Any], known: frozenset[str], at: str) -> list[str]:
    return [f"{at}.{key}" for key in mapping if key not in known]


def _check_selectors(objects: list[KubeObject], problems: list[str]) -> None:
    """A Deployment whose selector does not match its own template, and a Service
    whose selector matches no pod of the input, are refused."""
    templates: list[dict[str, str]] = []
    for obj in objects:
        if obj.kind == "Pod":
            templates.append(obj.body.get("metadata", {}).get("labels") or {})
        if obj.kind == "Job":  # its selector is made from its template's labels
            template = obj.body["spec"]["template"]
            templates.append((template.get("metadata") or {}).get("labels") or {})
        if obj.kind in REPLICATED:
            spec = obj.body["spec"]
            labels = (spec["template"].get("metadata") or {}).get("labels") or {}
            wanted = spec["selector"].get("matchLabels") or {}
            if spec["selector"].get("matchExpressions"):
                problems.append(f"unsupported field spec.selector.matchExpressions "
                                f"({obj.source}: {obj.ref})")
            if not wanted or not matches(wanted, labels):
                problems.append(f"{obj.ref} ({obj.source}): spec.selector: selector does not "
                                f"match template labels {labels}")
            templates.append(labels)
    for obj in objects:
        if obj.kind == "Service":
            selector = obj.body["spec"].get("selector") or {}
            if not selector:
                problems.append(f"unsupported field spec.selector (empty: a Service without "
                                f"a selector) ({obj.source}: {obj.ref})")
            elif not any(matches(selector, labels) for labels in templates):
                problems.append(f"{obj.ref} ({obj.source}): spec.selector {selector} matches "
                                "no pod in the input")


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
