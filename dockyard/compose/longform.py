"""``compose config``'s document in Docker Compose v2's long form: what ``docker compose
config`` prints for the same files — every short syntax spelled out (ports, volumes,
depends_on, networks, environment, command, healthcheck tests, secrets and configs),
implicit dependencies and the default network made explicit, ``env_file``s folded
into ``environment``, resources named ``<project>_<key>``, services and their keys in
name order.  Pure: the lowered project in, a document out."""

from __future__ import annotations

import shlex
from typing import Any

from dockyard.compose.lower import implicit_dependencies
from dockyard.compose.merge import as_mapping
from dockyard.compose.plan import ProjectPlan, ServicePlan
from dockyard.engine.flags import parse_publish


def long_form(plan: ProjectPlan) -> dict[str, Any]:
    doc = plan.doc
    services = {name: _service(plan, name, doc["services"][name] or {})
                for name in sorted(plan.services)}
    out: dict[str, Any] = {"name": plan.name, "services": services}
    used = {n for s in services.values() for n in s.get("networks") or {}}
    networks = {key: _resource(plan.name, key, item)
                for key, item in (doc.get("networks") or {}).items()}
    if "default" in used and "default" not in networks:
        networks["default"] = {"name": f"{plan.name}_default"}
    for section, items in (("networks", networks),
                           *((s, {key: _resource(plan.name, key, item) for key, item in
                                  (doc.get(s) or {}).items()})
                             for s in ("volumes", "secrets", "configs"))):
        if items:
            out[section] = dict(sorted(items.items()))
    return out


def _resource(project: str, key: str, item: Any) -> dict[str, Any]:
    item = dict(item or {})
    external = bool(item.get("external"))
    name = item.pop("name", None) or (key if external else f"{project}_{key}")
    return {"name": name, **item}


def _service(plan: ProjectPlan, name: str, service: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in service.items() if k not in ("env_file", "extends")}
    lowered = plan.services[name]
    for key in ("command", "entrypoint"):
        if isinstance(service.get(key), str):
            out[key] = shlex.split(service[key])
    if isinstance(service.get("build"), str):
        out["build"] = {"context": service["build"], "dockerfile": "Dockerfile"}
    environment = _environment(lowered)
    if environment:
        out["environment"] = environment
    else:
        out.pop("environment", None)
    if service.get("labels") is not None:
        out["labels"] = {k: "" if v is None else str(v)
                         for k, v in as_mapping(service["labels"]).items()}
    depends = _depends_on(service)
    if depends:
        out["depends_on"] = depends
    if service.get("network_mode") is None:
        raw = service.get("networks")
        out["networks"] = {"default": None} if raw is None else \
            {n: None for n in raw} if isinstance(raw, list) else dict(raw)
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, str):
        out["healthcheck"] = {**service["healthcheck"], "test": ["CMD-SHELL", test]}
    if service.get("ports"):
        out["ports"] = [p for item in service["ports"] for p in _ports(item)]
    if service.get("volumes"):
        out["volumes"] = [_volume(item) for item in service["volumes"]]
    for key in ("secrets", "configs"):
        if service.get(key):
            out[key] = [{"source": i} if isinstance(i, str) else i for i in service[key]]
    if service.get("secrets"):  # a secret's default target, as Compose fills it in
        out["secrets"] = [{**i, "target": i.get("target") or f"/run/secrets/{i['source']}"}
                          for i in out["secrets"]]
    if service.get("expose"):
        out["expose"] = [str(e) for e in service["expose"]]
    return dict(sorted(out.items()))


def _environment(service: ServicePlan) -> dict[str, str]:
    """What the container gets (env files, then ``environment``, resolved), with ``$``
    written ``$$`` as Compose prints it."""
    out: dict[str, str] = {}
    for item in service.spec.env:
        key, _, value = item.partition("=")
        out[key] = value.replace("$", "$$")
    return dict(sorted(out.items()))


def _depends_on(service: dict[str, Any]) -> dict[str, Any]:
    raw = service.get("depends_on") or {}
    deps: dict[str, Any] = {d: {} for d in raw} if isinstance(raw, list) else \
        {d: dict(o or {}) for d, o in raw.items()}
    restarts = {d for d in implicit_dependencies(service, restart_only=True)}
    for dep in implicit_dependencies(service):
        deps.setdefault(dep, {"restart": True} if dep in restarts else {})
    out = {}
    for dep, options in sorted(deps.items()):
        entry = {"condition": options.get("condition", "service_started")}
        if options.get("restart") is not None:
            entry["restart"] = bool(options["restart"])
        entry["required"] = options.get("required", True)
        out[dep] = entry
    return out


def _ports(item: Any) -> list[dict[str, Any]]:
    if isinstance(item, dict):
        out = {"mode": item.get("mode", "ingress"), **item}
        if out.get("published") is not None:
            out["published"] = str(out["published"])
        out.setdefault("protocol", "tcp")
        return [out]
    text = str(item)
    published = text.rsplit("/", 1)[0].count(":") >= 1
    entries = []
    for port in parse_publish(text):
        entry: dict[str, Any] = {"mode": "ingress"}
        if port.host_ip:
            entry["host_ip"] = port.host_ip
        entry["target"] = port.container_port
        if published and port.host_port:
            entry["published"] = str(port.host_port)
        entry["protocol"] = port.protocol
        entries.append(entry)
    return entries


def _volume(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        out = dict(item)
    else:
        parts = str(item).split(":")
        if len(parts) == 1:
            out = {"type": "volume", "target": parts[0]}
        else:
            source = parts[0]
            kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
            out = {"type": kind, "source": source, "target": parts[1]}
            modes = parts[2].split(",") if len(parts) > 2 else []
            if "ro" in modes:
                out["read_only"] = True
            if kind == "volume" and "nocopy" in modes:  # as Compose prints it
                out["volume"] = {"nocopy": True}
    if out["type"] == "volume":
        out.setdefault("volume", {})
    elif out["type"] == "bind":
        out.setdefault("bind", {"create_host_path": True})
    return out


def to_yaml(doc: dict[str, Any]) -> str:
    """The document as Compose prints it: block style, no anchors, multi-line strings
    as literal blocks, keys in the order given."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)
