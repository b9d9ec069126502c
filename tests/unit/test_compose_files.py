"""Loading across files: ``extends`` (same file, other file, chains, cycles),
``include`` (the included file's own directory and ``.env``, conflicts), profiles
(``--profile``, ``COMPOSE_PROFILES``, a service named explicitly) and the
secrets/configs/network_mode/static-IP/build lowering."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.compose.loader import Options, load
from dockyard.compose.lower import lower
from dockyard.compose.plan import ProjectPlan
from dockyard.errors import InvalidArgument, NotFound, NotImplementedFeature

DATA = Path(__file__).parent.parent / "data" / "compose"
EXTENDS = DATA / "extends"


def _load(profiles: tuple[str, ...] = (), env: dict[str, str] | None = None,
          services: tuple[str, ...] = ()) -> dict[str, dict[str, object]]:
    project = load(Options(profiles=profiles), EXTENDS, env or {}, services)
    services_doc: dict[str, dict[str, object]] = project.doc["services"]
    return services_doc


def test_extends_same_file_and_other_file() -> None:
    services = _load(("never",))
    web = services["web"]
    assert web["command"] == ["sleep", "1000"] and web["image"] == "box:1"
    assert web["environment"] == {"LEVEL": "web", "KEEP": "1"}  # merged by variable
    assert web["volumes"] == [f"{EXTENDS}/html:/www:ro"]
    assert "extends" not in web and web["profiles"] == ["never"]
    worker = services["worker"]
    # a chain in the other file; its relative paths are relative to that file
    assert worker["command"] == ["sleep", "1000"]
    assert worker["volumes"] == [f"{EXTENDS}/common/data:/data"]
    assert worker["env_file"] == [f"{EXTENDS}/common/job.env"]
    assert worker["labels"] == ["from=common"]
    assert worker["environment"] == {"ROLE": "worker"}
    plan = lower(load(Options(), EXTENDS, {}))  # worker has no profiles
    assert "FROM_JOB_ENV=yes" in plan.services["worker"].spec.env


def test_include_has_its_own_directory_and_env() -> None:
    cache = _load()["cache"]
    assert cache["environment"] == {"GREETING": "from lib's .env"}
    assert cache["volumes"] == [f"{EXTENDS}/lib/state:/state"]
    assert _load(env={"LIB_GREETING": "outer"})["cache"]["environment"] == {
        "GREETING": "outer"}  # the process environment still wins


def test_profiles() -> None:
    # as Docker Compose v2.40's `config --services` says for this file
    assert set(_load()) == {"cache", "worker"}
    assert {"debug", "tools"} <= set(_load(("debug",)))
    assert {"debug", "tools"} <= set(_load(env={"COMPOSE_PROFILES": "ops,debug"}))
    assert {"debug", "tools", "base"} <= set(_load(("*",)))
    # a service named explicitly adds its profiles (here: debug, so its dependency too)
    assert {"debug", "tools"} <= set(_load(services=("tools",)))
    with pytest.raises(InvalidArgument, match='service "tools" depends on undefined service '
                                              '"debug": invalid compose project'):
        _load(("ops",))


def test_extends_keeps_the_base_profiles() -> None:
    # extends copies every key of the base, profiles too (Docker Compose v2.40 does)
    assert "web" not in _load()
    assert {"web", "base"} <= set(_load(("never",)))


def _write(folder: Path, text: str, name: str = "compose.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_and_include_errors(tmp_path: Path) -> None:
    _write(tmp_path, "services:\n  a: {extends: b, image: box:1}\n  b: {extends: a}\n")
    with pytest.raises(InvalidArgument, match="extends cycle"):
        load(Options(), tmp_path, {})
    _write(tmp_path, "services:\n  a: {extends: ghost, image: box:1}\n")
    with pytest.raises(NotFound, match=r"services\.a\.extends: cannot extend service 'ghost'"):
        load(Options(), tmp_path, {})
    _write(tmp_path, "services:\n  a: {extends: {file: nope.yaml, service: x}}\n")
    with pytest.raises(NotFound, match="nope.yaml: no such file"):
        load(Options(), tmp_path, {})
    _write(tmp_path, "include: [sub/compose.yaml]\nservices:\n  a: {image: box:1}\n")
    _write(tmp_path, "services:\n  a: {image: other:1}\n", "sub/compose.yaml")
    with pytest.raises(InvalidArgument, match=r"include\[0\]: imported compose file .*sub/"
                                              r"compose.yaml defines conflicting service a"):
        load(Options(), tmp_path, {})
    _write(tmp_path, "include: [compose.yaml]\nservices:\n  a: {image: box:1}\n")
    with pytest.raises(InvalidArgument, match="include cycle"):
        load(Options(), tmp_path, {})
    _write(tmp_path, "include: [missing.yaml]\nservices:\n  a: {image: box:1}\n")
    with pytest.raises(NotFound, match=r"include\[0\]: open .*missing.yaml"):
        load(Options(), tmp_path, {})


def _plan(folder: Path, text: str, env: dict[str, str] | None = None) -> ProjectPlan:
    _write(folder, text)
    return lower(load(Options(project_name="p"), folder, env or {}))


def test_secrets_configs_lowered(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("s3cret\n")
    plan = lower(load(Options(project_name="p"), tmp_path, {"TOKEN": "from-env"})) if _write(
        tmp_path, """
services:
  app:
    image: box:1
    secrets: [token, {source: envtoken, target: other, uid: "100", gid: "101", mode: 0400}]
    configs: [inline, {source: fromfile, target: /etc/app.conf}]
secrets:
  token: {file: ./token.txt}
  envtoken: {environment: TOKEN}
configs:
  inline: {content: "port=${PORT:-80}"}
  fromfile: {file: ./token.txt}
""") else None
    assert plan is not None
    files = {f.name: f for f in plan.services["app"].files}
    assert files["token"].source == str(tmp_path / "token.txt")
    assert files["token"].target == "/run/secrets/token" and files["token"].content is None
    assert files["envtoken"].content == b"from-env"
    assert files["envtoken"].target == "/run/secrets/other"
    assert (files["envtoken"].uid, files["envtoken"].gid, files["envtoken"].mode) == \
        (100, 101, 0o400)
    assert files["inline"].content == b"port=80" and files["inline"].target == "/inline"
    assert files["fromfile"].target == "/etc/app.conf"
    with pytest.raises(InvalidArgument, match="undefined secret ghost"):
        _plan(tmp_path, "services:\n  a: {image: box:1, secrets: [ghost]}\n")
    unset = _plan(tmp_path, "services:\n  a: {image: box:1, secrets: [t]}\n"
                            "secrets:\n  t: {environment: NOPE}\n")
    assert unset.services["a"].files[0].missing == \
        "secrets.t.environment: variable NOPE is not set"  # an error at up (kernel test)


def test_network_mode_static_ip_and_implicit_dependencies(tmp_path: Path) -> None:
    plan = lower(load(Options(project_name="p"), tmp_path, {})) if _write(tmp_path, """
services:
  side:
    image: box:1
    network_mode: service:main
    volumes_from: [main:ro, container:elsewhere]
  main:
    image: box:1
    networks: {fixed: {ipv4_address: 10.123.0.10}}
  alone: {image: box:1, network_mode: none}
networks:
  fixed:
    ipam: {config: [{subnet: 10.123.0.0/24, gateway: 10.123.0.1}]}
""") else None
    assert plan is not None
    assert list(plan.services)[:2] == ["main", "side"]  # side needs main
    side = plan.services["side"]
    assert side.spec.network_mode == "container:p-main-1" and side.networks == ()
    assert side.spec.volumes_from == ("p-main-1:ro", "elsewhere")
    assert side.depends_on == {"main": "service_started"}
    assert plan.services["main"].networks[0].ip == "10.123.0.10"
    assert (plan.networks["fixed"].subnet, plan.networks["fixed"].gateway) == \
        ("10.123.0.0/24", "10.123.0.1")
    assert plan.services["alone"].spec.network_mode == "none"
    with pytest.raises(InvalidArgument, match="network_mode and networks cannot be combined"):
        _plan(tmp_path, "services:\n  a: {image: box:1, network_mode: host, networks: [n]}\n"
                        "networks:\n  n: {}\n")
    with pytest.raises(InvalidArgument, match="has no ipam subnet"):
        _plan(tmp_path, "services:\n  a:\n    image: box:1\n    networks: {n: {ipv4_address: "
                        "10.9.0.2}}\nnetworks:\n  n: {}\n")
    with pytest.raises(NotImplementedFeature, match="network_mode: 'bogus'"):
        _plan(tmp_path, "services:\n  a: {image: box:1, network_mode: bogus}\n")


def test_build_lowered(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    plan = lower(load(Options(project_name="p"), tmp_path, {"FROM_ENV": "e"})) if _write(
        tmp_path, """
services:
  named:
    build:
      context: ./ctx
      dockerfile: Other.dockerfile
      args: {A: "1", FROM_ENV: null}
      target: final
      labels: {l: v}
      no_cache: true
  plain:
    build: ./ctx
  tagged:
    image: registry.local/app:2
    build: {context: ctx, dockerfile_inline: "FROM box:1"}
""") else None
    assert plan is not None
    named = plan.services["named"].build
    assert named is not None
    assert named.image == "p-named" and plan.services["named"].spec.image == "p-named"
    assert named.context == str(tmp_path / "ctx") and named.dockerfile == "Other.dockerfile"
    assert named.args == {"A": "1", "FROM_ENV": "e"} and named.target == "final"
    assert named.labels == {"l": "v"} and named.no_cache
    tagged = plan.services["tagged"].build
    assert tagged is not None and tagged.image == "registry.local/app:2"
    assert tagged.dockerfile_inline == "FROM box:1"
    with pytest.raises(NotFound, match=r"services\.a\.build\.context: .*/nope is not a dir"):
        _plan(tmp_path, "services:\n  a: {build: ./nope}\n")
    with pytest.raises(InvalidArgument, match="neither an image nor a build context"):
        _plan(tmp_path, "services:\n  a: {command: [x]}\n")


def test_yaml_scalars_read_as_docker_compose_reads_them(tmp_path: Path) -> None:
    # Docker Compose v2.40's `config` on this file says A: "yes", B: "on", C: "true",
    # D: "256", E: "15", G: "1000", x: "no" (Go YAML: only true/false are booleans)
    plan = _plan(tmp_path, """
services:
  a:
    image: box:1
    environment: {A: yes, B: on, C: true, D: 0400, E: 0o17, G: 1_000}
    labels: {x: no}
""")
    env = plan.services["a"].spec.env
    assert env == ("A=yes", "B=on", "C=true", "D=256", "E=15", "G=1000")
    assert plan.services["a"].spec.labels["x"] == "no"


def test_watch_rules_and_changes(tmp_path: Path) -> None:
    from dockyard.compose.plan import WatchRule
    from dockyard.compose.watch import changes, snapshot

    plan = _plan(tmp_path, """
services:
  a:
    build: .
    develop:
      watch:
        - {action: sync, path: ./src, target: /app, ignore: [node_modules/, "*.tmp"]}
        - {action: rebuild, path: package.json}
""")
    sync, rebuild = plan.services["a"].watch
    assert sync.path == str(tmp_path / "src") and sync.target == "/app"
    assert rebuild.path == str(tmp_path / "package.json") and rebuild.action == "rebuild"
    (tmp_path / "src" / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / "src" / "node_modules" / "x" / "y.js").write_text("")
    (tmp_path / "src" / "keep.js").write_text("1")
    (tmp_path / "src" / "drop.tmp").write_text("1")
    rule = WatchRule("a", "sync", str(tmp_path / "src"), "/app", sync.ignore)
    before = snapshot(rule)
    assert set(before) == {"keep.js"}
    (tmp_path / "src" / "new").mkdir()
    (tmp_path / "src" / "new" / "f").write_text("2")
    (tmp_path / "src" / "keep.js").unlink()
    assert changes(before, snapshot(rule)) == (["new", "new/f"], ["keep.js"])
    with pytest.raises(InvalidArgument, match=r"develop\.watch\[0\]: action sync needs a "
                                              "target"):
        _plan(tmp_path, "services:\n  a:\n    image: box:1\n    develop:\n      watch:\n"
                        "        - {action: sync, path: ./src}\n")


def test_nested_keys_not_implemented_are_named(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedFeature) as caught:
        _plan(tmp_path, """
services:
  a:
    image: box:1
    healthcheck: {test: "true", start_interval: 1s}
    volumes: [{type: volume, source: v, target: /v, volume: {nocopy: true}},
              {type: bind, source: ., target: /b, bind: {propagation: shared}}]
    ports: [{target: 80, published: "8080", mode: host, name: web}]
    env_file: [{path: x.env, format: raw}]
    depends_on: {b: {condition: service_started, required: false}}
volumes:
  v: {}
""")
    assert str(caught.value).endswith(
        "not supported by dockyard compose yet: "
        "services.a.volumes[1].bind.propagation (line 7), "
        "services.a.env_file[0].format (line 9)")
    # a dependency with required: false that is not in the file is no error
    plan = _plan(tmp_path, "services:\n  a:\n    image: box:1\n    depends_on: "
                           "{b: {condition: service_started, required: false}}\n")
    assert plan.services["a"].depends_on == {}


def test_links_and_platform(tmp_path: Path) -> None:
    from dockyard.compose import labels as L
    from dockyard.images.imagefile import host_platform

    host = host_platform()
    plan = _plan(tmp_path, f"""
services:
  a: {{image: box:1, links: [b], platform: "linux/{host['architecture']}"}}
  b: {{image: box:1}}
""")
    # as Docker Compose v2.40's config says: a link is a dependency with restart: true
    assert plan.services["a"].depends_on == {"b": "service_started"}
    assert plan.services["a"].spec.labels[L.DEPENDS_ON] == "b:service_started:true"
    assert list(plan.services) == ["b", "a"]
    with pytest.raises(NotImplementedFeature, match=r"services\.a\.platform: linux/other "
                                                    "is not this host's"):
        _plan(tmp_path, "services:\n  a: {image: box:1, platform: linux/other}\n")
    with pytest.raises(NotImplementedFeature, match=r"services\.a\.links: the alias 'db'"):
        _plan(tmp_path, "services:\n  a: {image: box:1, links: ['b:db']}\n  b: {image: x}\n")


def test_sysctls_only_namespaced(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "services:\n  a:\n    image: box:1\n    shm_size: 1g\n"
                           "    sysctls: [net.core.somaxconn=1024, fs.mqueue.msg_max=20]\n")
    spec = plan.services["a"].spec
    assert spec.sysctls == (("net.core.somaxconn", "1024"), ("fs.mqueue.msg_max", "20"))
    assert spec.shm_size == 1024**3
    with pytest.raises(InvalidArgument, match=r"services\.a\.sysctls: sysctl 'vm\.swappiness'"
                                              " is not allowed"):
        _plan(tmp_path, "services:\n  a: {image: box:1, sysctls: {vm.swappiness: 1}}\n")
    with pytest.raises(InvalidArgument, match="not allowed with network host"):
        _plan(tmp_path, "services:\n  a: {image: box:1, network_mode: host, "
                        "sysctls: {net.core.somaxconn: 1}}\n")
    # the engine refuses it too, whoever built the spec
    from dockyard.engine.ocispec import check_sysctls

    with pytest.raises(InvalidArgument, match="kernel.panic"):
        check_sysctls(spec._replace(sysctls=(("kernel.panic", "1"),)))


def test_blkio_config_lowers_as_the_cli_flags(tmp_path: Path) -> None:
    from dockyard.engine.spec import BlkioThrottleDevice, BlkioWeightDevice

    spec = _plan(tmp_path, """
services:
  a:
    image: box:1
    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sda, rate: 1mb}]
      device_write_iops: [{path: /dev/sda, rate: 30}]
""").services["a"].spec
    assert spec.blkio_weight == 300
    assert spec.blkio_weight_device == (BlkioWeightDevice("/dev/sda", 400),)
    assert spec.device_read_bps == (BlkioThrottleDevice("/dev/sda", 1024**2),)
    assert spec.device_write_iops == (BlkioThrottleDevice("/dev/sda", 30),)


def test_build_additional_contexts_cache_and_ssh(tmp_path: Path) -> None:
    """``additional_contexts`` resolved from the project's directory (as Compose does)
    or kept as images; ``cache_from`` images kept, other cache kinds as notes;
    ``ssh`` and the kinds of context the builder has not refused by name."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "extra").mkdir()
    text = ("services:\n  app:\n    build:\n      context: ctx\n"
            "      additional_contexts: [extra=./extra, base=docker-image://box:1]\n"
            "      cache_from: [box:1, \"type=local,src=/x\"]\n")
    (tmp_path / "compose.yaml").write_text(text)
    build = lower(load(Options(), tmp_path, {})).services["app"].build
    assert build is not None
    assert build.contexts == {"extra": str(tmp_path / "extra"), "base": "docker-image://box:1"}
    # an image is a cache source; another kind is a note
    assert build.cache_from == ("box:1",) and not build.inline_cache
    assert [n.split(":")[0] for n in build.notes] == ["services.app.build.cache_from[1]"]
    for extra, message in (("      ssh: [default]\n", "build.ssh: not supported"),
                           ("", "build context gone")):
        body = text.replace("extra=./extra", "extra=./gone") if not extra else text + extra
        (tmp_path / "compose.yaml").write_text(body)
        with pytest.raises((NotImplementedFeature, NotFound)) as caught:
            lower(load(Options(), tmp_path, {}))
        assert message.split()[-1] in str(caught.value), caught.value
    (tmp_path / "compose.yaml").write_text(text.replace("./extra", "service:other"))
    with pytest.raises(NotImplementedFeature, match="only a directory or docker-image"):
        lower(load(Options(), tmp_path, {}))
