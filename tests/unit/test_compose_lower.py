"""Lowering: a compose service becomes the very ContainerSpec that ``dockyard run``
builds from the equivalent flags; networks, volumes, start order and the config hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard import __version__
from dockyard.cli.container_flags import RUN_OPTIONS, spec_from_flags
from dockyard.cli.flagtable import parse
from dockyard.compose import labels as L
from dockyard.compose.loader import Options, load
from dockyard.compose.lower import lower
from dockyard.compose.order import dependents, start_order, with_dependencies
from dockyard.compose.plan import Attachment, ProjectPlan
from dockyard.engine.spec import ContainerSpec

DATA = Path(__file__).parent.parent / "data" / "compose"


def _plan(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ProjectPlan:
    (tmp_path / "compose.yaml").write_text(text)
    return lower(load(Options(project_name="proj"), tmp_path, env or {}))


def _run_spec(argv: list[str]) -> ContainerSpec:
    values, positionals = parse(RUN_OPTIONS, argv, interspersed=False)
    return spec_from_flags(positionals[0], tuple(positionals[1:]), values)


def test_service_lowers_to_the_cli_spec(tmp_path: Path) -> None:
    (tmp_path / "web.env").write_text("FROM_FILE=1\n")
    plan = _plan(tmp_path, """
services:
  web:
    image: box:1
    command: httpd -f -p "80"
    entrypoint: ["/bin/sh", "-c"]
    environment: [A=1, B=two words]
    env_file: web.env
    ports: ["127.0.0.1:8080:80", "9000-9001:90-91/udp",
            {target: 53, published: "5353", protocol: udp, host_ip: 127.0.0.1}]
    volumes: ["./site:/site:ro", "data:/data:nocopy", "/anon", {type: tmpfs, target: /run/t},
              {type: volume, source: data, target: /d2, volume: {nocopy: true}}]
    restart: on-failure:3
    deploy: {resources: {reservations: {memory: 24M, cpus: "0.25"}}}
    user: "1000:1000"
    working_dir: /srv
    hostname: webhost
    init: true
    read_only: true
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    tmpfs: /tmp
    stop_signal: SIGINT
    stop_grace_period: 1m30s
    extra_hosts: ["db:10.0.0.5", "cache=10.0.0.6"]
    dns: 10.0.0.1
    labels: {team: web}
    healthcheck:
      test: ["CMD", "wget", "-q", "http://localhost/"]
      interval: 5s
      timeout: 2s
      retries: 4
      start_period: 1s
      start_interval: 500ms
volumes:
  data: {}
""")
    service = plan.services["web"]
    flags = _run_spec([
        "--entrypoint", "/bin/sh -c", "-e", "FROM_FILE=1", "-e", "A=1", "-e", "B=two words",
        "-p", "127.0.0.1:8080:80", "-p", "9000-9001:90-91/udp", "-p", "127.0.0.1:5353:53/udp",
        "-v", f"{tmp_path}/site:/site:ro", "-v", "proj_data:/data:nocopy", "-v", "/anon",
        "--mount", "type=volume,source=proj_data,target=/d2,volume-nocopy",
        "--restart", "on-failure:3", "-u", "1000:1000", "-w", "/srv", "-h", "webhost",
        "--init", "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL",
        "--tmpfs", "/run/t", "--tmpfs", "/tmp", "--stop-signal", "SIGINT",
        "--stop-timeout", "90", "--add-host", "db:10.0.0.5", "--add-host", "cache:10.0.0.6",
        "--dns", "10.0.0.1", "--health-interval", "5s", "--health-timeout", "2s",
        "--health-retries", "4", "--health-start-period", "1s", "--health-cmd", "x",
        "--health-start-interval", "500ms", "--memory-reservation", "24m",
        "box:1", "httpd", "-f", "-p", "80"])
    assert flags.healthcheck is not None
    flags = flags._replace(
        healthcheck=flags.healthcheck._replace(test=("CMD", "wget", "-q", "http://localhost/")),
        # -v creates a missing host directory, and so does compose's short syntax
        labels=service.spec.labels)
    assert service.spec == flags
    assert service.spec.labels["team"] == "web"
    assert service.networks == (Attachment("proj_default", ("web",), None),)


def test_compose_labels_and_names(tmp_path: Path) -> None:
    plan = _plan(tmp_path, """
services:
  db: {image: box:1}
  app:
    image: box:1
    depends_on: {db: {condition: service_healthy}}
    networks: {back: {aliases: [application]}, front: null}
    deploy: {replicas: 3}
networks:
  back: {labels: [owner=me]}
  front: {internal: true}
  unused: {}
""")
    app = plan.services["app"]
    assert list(plan.services) == ["db", "app"]
    assert app.replicas == 3 and app.depends_on == {"db": "service_healthy"}
    assert app.networks == (Attachment("proj_back", ("app", "application"), None),
                            Attachment("proj_front", ("app",), None))
    labels = app.spec.labels
    assert labels[L.PROJECT] == "proj" and labels[L.SERVICE] == "app"
    assert labels[L.ONEOFF] == "False" and labels[L.WORKING_DIR] == str(tmp_path)
    assert labels[L.CONFIG_FILES] == str(tmp_path / "compose.yaml")
    assert labels[L.DEPENDS_ON] == "db:service_healthy:false"
    assert labels[L.CONFIG_HASH] == app.config_hash and len(app.config_hash) == 64
    assert set(plan.networks) == {"default", "back", "front"}  # `unused` is never made
    assert plan.networks["back"].labels == {"owner": "me", L.PROJECT: "proj",
                                            L.NETWORK: "back", L.VERSION: __version__,
                                            L.CONFIG_HASH: plan.networks["back"].config_hash}
    assert labels[L.VERSION] == __version__
    # the hash follows what the network is made with
    assert len({n.config_hash for n in plan.networks.values()}) == 3
    assert plan.networks["front"].internal


def test_config_hash_follows_what_runs(tmp_path: Path) -> None:
    base = "services:\n  a:\n    image: box:1\n    command: sleep 1\n"
    first = _plan(tmp_path, base).services["a"].config_hash
    assert _plan(tmp_path, base).services["a"].config_hash == first
    scaled = _plan(tmp_path, base + "    deploy: {replicas: 2}\n").services["a"]
    assert scaled.config_hash == first  # scaling recreates nothing
    assert _plan(tmp_path, base.replace("sleep 1", "sleep 2")).services["a"].config_hash \
        != first
    assert _plan(tmp_path, base + "    environment: {A: '1'}\n").services["a"].config_hash \
        != first


def test_the_hash_holds_across_versions(tmp_path: Path) -> None:
    """A service's config-hash is over the fields it sets: a field a later dockyard adds
    to ContainerSpec, MountSpec or Healthcheck, at its default, changes no hash, so an
    upgrade recreates no container.  Pinned: if this value moves, every project's
    containers would be recreated by the next ``up`` after the upgrade (as they were
    once, moving to this hash)."""
    text = ("services:\n  a:\n    image: box:1\n    command: sleep 1\n"
            "    volumes: [data:/data]\n    healthcheck: {test: [CMD, 'true']}\n"
            "volumes:\n  data: {}\n")
    assert _plan(tmp_path, text).services["a"].config_hash == \
        "2d0670fd9eef8f8d592cb6b79783497e38f36e723acc18042e87181865dc0212"


def test_named_volume_names_and_external(tmp_path: Path) -> None:
    plan = _plan(tmp_path, """
services:
  a: {image: box:1, volumes: ["v1:/a", "v2:/b", "v3:/c"]}
volumes:
  v1: {}
  v2: {name: exact-name}
  v3: {external: true}
""")
    sources = [m.source for m in plan.services["a"].spec.mounts]
    assert sources == ["proj_v1", "exact-name", "v3"]
    assert plan.volumes["v1"].labels == {L.PROJECT: "proj", L.VOLUME: "v1",
                                         L.VERSION: __version__,
                                         L.CONFIG_HASH: plan.volumes["v1"].config_hash}
    assert plan.volumes["v3"].external


def test_app_corpus_lowers() -> None:
    folder = DATA / "app"
    plan = lower(load(Options(), folder, {"WEB_PORT": "18555"}))
    assert plan.name == "app"
    assert list(plan.services) == ["store", "seed", "api", "web"]
    api = plan.services["api"]
    assert api.depends_on == {"store": "service_healthy",
                              "seed": "service_completed_successfully"}
    assert "API_MODE=slow" in api.spec.env  # from .env
    assert plan.services["web"].spec.ports[0].host_port == 18555
    assert plan.services["store"].spec.init


def test_order_helpers() -> None:
    deps = {"web": {"api": "service_started"}, "api": {"store": "service_healthy"},
            "store": {}, "other": {}}
    assert start_order(deps) == ["store", "api", "web", "other"]
    assert with_dependencies(["web"], deps) == {"web", "api", "store"}
    assert dependents({"store"}, deps) == {"api", "web"}
    assert dependents({"web"}, deps) == set()


@pytest.mark.parametrize("text", [
    "services:\n  a: {image: box:1, depends_on: [nope]}\n",
    "services:\n  a: {image: box:1, depends_on: {a: {condition: service_started}}}\n",
])
def test_bad_dependencies(tmp_path: Path, text: str) -> None:
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="undefined service 'nope'|cycle detected: a -> a"):
        _plan(tmp_path, text)


def test_boolean_keys_read_strings_as_compose_does(tmp_path: Path) -> None:
    """An interpolated boolean is a string: ``"false"`` is false, not truthy."""
    from dockyard.errors import InvalidArgument

    plan = _plan(tmp_path, """
services:
  a:
    image: box:1
    read_only: "false"
    init: "true"
    volumes: [{type: volume, target: /v, read_only: "no", volume: {nocopy: "false"}}]
""")
    spec = plan.services["a"].spec
    assert (spec.read_only, spec.init) == (False, True)
    assert (spec.mounts[0].readonly, spec.mounts[0].nocopy) == (False, False)
    with pytest.raises(InvalidArgument, match=r"services\.a\.tty: 'maybe'"):
        _plan(tmp_path, "services:\n  a:\n    image: box:1\n    tty: maybe\n")
