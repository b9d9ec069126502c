"""Converge: make the host match a ``ProjectPlan`` through ``Engine``, as Docker Compose
does: containers ``<project>-<service>-<n>`` with Compose's labels, networks and
volumes ``<project>_<name>``; what already matches (same config hash) is left alone,
a changed service is recreated together with the services that depend on it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from dockyard import trace
from dockyard.compose import labels as L
from dockyard.compose.order import dependents, with_dependencies
from dockyard.compose.plan import Attachment, Hook, ProjectPlan, ServicePlan
from dockyard.compose.resources import ensure_networks, ensure_volumes
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unavailable

if TYPE_CHECKING:
    from dockyard.build.executor import Reporter
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord
    from dockyard.engine.spec import MountSpec, PortSpec

Report = Callable[[str], None]


class UpOptions(NamedTuple):
    services: tuple[str, ...] = ()
    scale: dict[str, int] = {}  # noqa: RUF012 - never mutated
    remove_orphans: bool = False
    wait_timeout: float = 120.0
    recreate: str = "diverged"  # diverged | force (--force-recreate) | never (--no-recreate)
    no_deps: bool = False  # the named services alone, not what they depend on
    build: str = "missing"  # missing (build what is not there) | always (--build) | never
    start: bool = True  # False: `create`, the containers made and left created


class OneOff(NamedTuple):
    """``compose run``'s options."""

    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    name: str | None = None
    labels: dict[str, str] = {}  # noqa: RUF012 - never mutated
    tty: bool = False
    interactive: bool = False
    remove: bool = False
    service_ports: bool = False
    ports: tuple[PortSpec, ...] = ()  # -p
    mounts: tuple[MountSpec, ...] = ()  # -v
    use_aliases: bool = False  # the service's name and aliases on its networks


class Project:
    """One project on one engine: what belongs to it is found by its labels."""

    def __init__(self, engine: Engine, plan: ProjectPlan, report: Report,
                 build_reporter: Callable[[], Reporter] | None = None) -> None:
        self.engine = engine
        self.plan = plan
        self.report = report
        self.build_reporter = build_reporter
        self._image_ids: dict[str, str | None] = {}  # reference → config digest (None: none)

    # --- what exists ---------------------------------------------------------------
    def containers(self, services: tuple[str, ...] = (), *,
                   one_off: bool = False) -> list[ContainerRecord]:
        """The project's containers (all states), by service then number; ``one_off``:
        with the containers of ``run``."""
        found = [r for r in self.engine.containers.list(all_containers=True,
                                                        labels={L.PROJECT: self.plan.name})
                 if (one_off or r.spec.labels.get(L.ONEOFF, "False") == "False")
                 and (not services or r.spec.labels.get(L.SERVICE) in services)]
        return sorted(found, key=lambda r: (r.spec.labels.get(L.SERVICE, ""), _number(r)))

    def orphans(self) -> list[ContainerRecord]:
        return [r for r in self.containers()
                if r.spec.labels.get(L.SERVICE) not in self.plan.services]

    def check_services(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.plan.services:
                raise NotFound(f"no such service: {name}")

    # --- up ----------------------------------------------------------------------
    def up(self, options: UpOptions) -> None:
        self.check_services(options.services + tuple(options.scale))
        depends = {n: s.depends_on for n, s in self.plan.services.items()}
        selected = set(options.services) if options.no_deps and options.services else \
            with_dependencies(list(options.services or self.plan.services), depends)
        # every image first (built, pulled): a failure creates nothing
        for name in selected:  # a secret with no value: said before anything is made
            for item in self.plan.services[name].files:
                if item.missing:
                    raise InvalidArgument(f"service {name!r}: {item.missing}")
        self.images([n for n in self.plan.services if n in selected], options.build)
        trace.mark("compose: images there")
        existing: dict[str, list[ContainerRecord]] = {}  # listed once: ~4 ms a listing
        for record in self.containers():
            existing.setdefault(record.spec.labels.get(L.SERVICE, ""), []).append(record)
        self._orphans(options.remove_orphans, [
            r for name, records in existing.items() if name not in self.plan.services
            for r in records])
        if ensure_networks(self, selected):  # a network made again: its containers stopped
            existing = {}
            for record in self.containers():
                existing.setdefault(record.spec.labels.get(L.SERVICE, ""), []).append(record)
        trace.mark("compose: containers listed, networks there")
        ensure_volumes(self, selected)
        unsettled = {n for n in selected if not self._settled(
            self.plan.services[n], options, existing.get(n, []))}
        # a recreated service's dependents follow it
        todo = (unsettled | dependents(unsettled, depends)) & selected
        changed: set[str] = set()

        def one(name: str) -> None:
            service = self.plan.services[name]
            if options.start:
                self._wait_for_dependencies(service, options.wait_timeout)
            recreate = options.recreate
            if recreate == "diverged" and name in dependents(changed, depends):
                recreate = "force"
            if self._converge_service(service, options.scale.get(name, service.replicas),
                                      recreate, start=options.start,
                                      existing=existing.get(name, [])):
                changed.add(name)

        if todo:  # (a no-op up: nothing to wait for, no thread to start)
            in_parallel([n for n in self.plan.services if n in todo],
                        {n: set(depends[n]) & todo for n in todo}, one)

    def _settled(self, service: ServicePlan, options: UpOptions,
                 existing: list[ContainerRecord]) -> bool:
        """Whether converging ``service`` would change nothing: its containers 1..N
        there, made from this plan and image (or kept by ``--no-recreate``), and
        running when ``up`` starts them."""
        replicas = options.scale.get(service.name, service.replicas)
        if options.recreate == "force" or \
                sorted(_number(r) for r in existing) != list(range(1, replicas + 1)):
            return False
        image_id = self.image_id(service.spec.image)
        for record in existing:
            if options.recreate != "never" and (
                    record.spec.labels.get(L.CONFIG_HASH) != service.config_hash or
                    record.spec.labels.get(L.IMAGE) != image_id):
                return False
            if options.start and record.state not in ("running", "restarting", "paused"):
                return False
        return True

    # --- images ------------------------------------------------------------------
    def images(self, services: list[str], build: str = "missing") -> None:
        """Each service's image there: built (``build``: always, when missing, never),
        else pulled as its ``pull_policy`` says; a failure names the service."""
        unknown = [self.plan.services[n].spec.image for n in services]
        unknown = [ref for ref in unknown if ref not in self._image_ids]
        if unknown:  # every service's image looked up at once (one query, not one each)
            self._image_ids.update(self.engine.image_index.ids_of(unknown))
        for name in services:
            service = self.plan.services[name]
            present = self._has_image(service.spec.image)
            if service.build is not None and build != "never" and (
                    build == "always" or not present or service.pull_policy == "build"):
                self.build(name)
            elif service.pull_policy == "always" or (
                    not present and service.pull_policy != "never"):
                self.pull(name)
            elif not present:
                raise NotFound(f"service {name!r}: no such image: {service.spec.image} "
                               f"(pull_policy: {service.pull_policy})")

    def _has_image(self, ref: str) -> bool:
        return self.image_id(ref) is not None

    def image_id(self, ref: str) -> str | None:
        """The ID (config digest) of the image ``ref`` names; None when there is none.
        Looked up once a command (a build or pull forgets what was looked up)."""
        if ref not in self._image_ids:
            try:
                self._image_ids[ref] = self.engine.image_index.resolve(ref).config_digest
            except NotFound:
                self._image_ids[ref] = None
        return self._image_ids[ref]

    def _image_id(self, ref: str) -> str:
        found = self.image_id(ref)
        if found is None:
            self._image_ids.pop(ref, None)
            self.engine.image_index.resolve(ref)  # Docker's error
        return str(found)

    def build(self, name: str) -> str:
        """``name``'s image through the engine's builder (what ``dockyard build`` uses);
        returns its ID."""
        from dockyard.build.executor import BuildOptions
        from dockyard.engine.builds import BuildRequest

        plan = self.plan.services[name].build
        if plan is None:
            raise InvalidArgument(f"service {name!r} has no build section")
        self.report(f"Service {name}  Building")
        for note in plan.notes:
            self.report(note)
        options = BuildOptions(tags=(plan.image, *plan.tags), build_args=plan.args,
                               target=plan.target, no_cache=plan.no_cache, pull=plan.pull,
                               labels=plan.labels, secrets=plan.secrets,
                               network=plan.network, contexts=plan.contexts,
                               cache_from=plan.cache_from, inline_cache=plan.inline_cache)
        stdin = None
        dockerfile = plan.dockerfile
        if plan.dockerfile_inline is not None:
            import io

            stdin, dockerfile = io.BytesIO(plan.dockerfile_inline.encode()), "-"
        elif dockerfile is not None and not os.path.isabs(dockerfile):
            dockerfile = os.path.join(plan.context, dockerfile)
        from dockyard.build.model import SilentReporter

        reporter = self.build_reporter() if self.build_reporter else SilentReporter()
        try:
            image_id = self.engine.builds.build(BuildRequest(plan.context, dockerfile, options),
                                                reporter, stdin)
        except DockyardError as exc:
            raise _renamed(exc, f"failed to build service {name!r}: {exc}") from None
        self._image_ids.clear()
        self.report(f"Service {name}  Built")
        return image_id

    def pull(self, name: str) -> None:
        from dockyard.oci import reference
        from dockyard.registry.transfer import pull

        image = self.plan.services[name].spec.image
        self.report(f"Image {image}  Pulling")
        images = self.engine.images
        try:
            digest = pull(images.content, images.index, image,
                          insecure=frozenset(self.engine.insecure_registries))
        except DockyardError as exc:
            raise _renamed(exc, f"service {name!r}: pull {image}: {exc}") from None
        images.pulled(digest, str(reference.parse(image)))
        self._image_ids.clear()
        self.report(f"Image {image}  Pulled")

    def _orphans(self, remove: bool, orphans: list[ContainerRecord]) -> None:
        if orphans and not remove:
            self.report(f"Found orphan containers ({', '.join(r.name for r in orphans)}) for "
                        "this project. If you removed or renamed this service in your compose "
                        "file, you can run this command with the --remove-orphans flag to "
                        "clean it up.")
        elif orphans:
            for record in orphans:
                self._remove(record)

    def _converge_service(self, service: ServicePlan, replicas: int, recreate: str, *,
                          start: bool = True,
                          existing: list[ContainerRecord] | None = None) -> bool:
        """Its containers 1..replicas, matching the plan (``recreate``: when they
        diverge from it, always, or never) and started; True when one was recreated."""
        if existing is None:
            existing = self.containers((service.name,))
        numbered = {_number(r): r for r in existing}
        for number in sorted(numbered, reverse=True):  # scaled down: from the top
            if number > replicas:
                self._remove(numbered.pop(number))
        recreated = False
        image_id = self._image_id(service.spec.image)
        for number in range(1, replicas + 1):
            record = numbered.get(number)
            diverged = record is not None and (
                record.spec.labels.get(L.CONFIG_HASH) != service.config_hash or
                record.spec.labels.get(L.IMAGE) != image_id)  # rebuilt, or pulled anew
            carried: dict[str, str] = {}
            if record is not None and (recreate == "force" or
                                       (recreate == "diverged" and diverged)):
                self.report(f"Container {record.name}  Recreate")
                carried = self._anonymous_volumes(record)
                self._remove(record, volumes=False)
                record, recreated = None, True
            if record is None:
                record = self._create(service, number, carried)
            if start and record.state not in ("running", "restarting", "paused"):
                record = self.engine.containers.get(record.id)  # the listing may be stale
                if record.state not in ("running", "restarting", "paused"):
                    self._start(service, record)
        return recreated

    def _anonymous_volumes(self, record: ContainerRecord) -> dict[str, str]:
        """Target → name of the anonymous volumes a container has (its own and its
        image's VOLUMEs): what its replacement takes over, as Docker Compose does."""
        out = {}
        for mount in record.spec.mounts:
            if mount.type == "volume" and mount.source:
                volume = self.engine.volumes.find(mount.source)
                if volume is not None and volume.anonymous:
                    out[mount.target.rstrip("/") or "/"] = volume.name
        return out

    def _create(self, service: ServicePlan, number: int,
                carried: dict[str, str] | None = None) -> ContainerRecord:
        """Container ``number`` of ``service``; ``carried``: anonymous volumes of the
        container it replaces, mounted again where the new one has an anonymous
        volume or none at all (a named volume or bind there wins)."""
        from dockyard.engine.container_network import connect
        from dockyard.engine.spec import MountSpec

        name = service.spec.name or f"{self.plan.name}-{service.name}-{number}"
        image_id = self._image_id(service.spec.image)
        mounts = list(service.spec.mounts)
        if carried:
            taken = {m.target.rstrip("/") or "/" for m in mounts
                     if m.type != "volume" or m.source}
            own = {(m.target.rstrip("/") or "/"): m for m in mounts
                   if m.type == "volume" and not m.source}
            mounts = [m for m in mounts if not (m.type == "volume" and not m.source and
                                                (m.target.rstrip("/") or "/") in carried)]
            # the service's own options (read_only, nocopy) kept on the volume carried over
            mounts += [own[target]._replace(source=volume) if target in own
                       else MountSpec("volume", volume, target)
                       for target, volume in carried.items() if target not in taken]
        spec = service.spec._replace(
            name=name, labels={**service.spec.labels, L.NUMBER: str(number), L.IMAGE: image_id},
            mounts=(*mounts, *self._file_mounts(service)))
        if service.networks:
            primary = service.networks[0]
            spec = spec._replace(network_mode=primary.network, network_aliases=primary.aliases,
                                 ip_address=primary.ip)
        self.report(f"Container {name}  Creating")
        record = self.engine.containers.create(spec)
        try:
            self._copy_files(record, service)
            for attachment in service.networks[1:]:
                connect(self.engine.containers, record, attachment.network,
                        attachment.aliases, attachment.ip)
        except BaseException:
            self.engine.containers.remove(record.id, force=True, volumes=True)
            raise
        return record

    def one_off(self, name: str, options: OneOff) -> ContainerRecord:
        """``compose run``: a created container of ``name`` labelled one-off
        (``<project>-<service>-run-<id>``), on the service's networks, its ports only
        with ``service_ports``."""
        from dockyard.engine.container_network import connect

        service = self.plan.services[name]
        spec = service.spec
        if options.command is not None:
            spec = spec._replace(command=options.command)
        if options.entrypoint is not None:
            spec = spec._replace(entrypoint=options.entrypoint)
        slug = os.urandom(32).hex()  # Compose's: the name carries its first 12
        container = options.name or f"{self.plan.name}-{name}-run-{slug[:12]}"
        image_id = self._image_id(spec.image)
        labels = {**spec.labels, **options.labels, L.ONEOFF: "True", L.IMAGE: image_id,
                  L.SLUG: slug}
        spec = spec._replace(
            name=container, labels=labels, env=spec.env + options.env,
            user=options.user or spec.user, working_dir=options.workdir or spec.working_dir,
            tty=options.tty, stdin_open=options.interactive, auto_remove=options.remove,
            ports=(spec.ports if options.service_ports else ()) + options.ports,
            restart=spec.restart._replace(name="no", maximum_retry_count=0) if options.remove
            else spec.restart,
            mounts=spec.mounts + options.mounts + self._file_mounts(service))

        def aliases(attachment: Attachment) -> tuple[str, ...]:
            # Compose: a one-off answers to its service's name and aliases only with
            # --use-aliases
            return attachment.aliases if options.use_aliases else ()

        if service.networks:
            primary = service.networks[0]
            spec = spec._replace(network_mode=primary.network,
                                 network_aliases=aliases(primary))
        record = self.engine.containers.create(spec)
        try:
            self._copy_files(record, service)
            for attachment in service.networks[1:]:
                connect(self.engine.containers, record, attachment.network,
                        aliases(attachment))
        except BaseException:
            self.engine.containers.remove(record.id, force=True, volumes=True)
            raise
        return record

    def prepare_run(self, name: str, *, no_deps: bool, build: str = "missing") -> None:
        """What a ``compose run`` of ``name`` needs first: its image, networks and
        volumes, and (unless ``no_deps``) its dependencies up."""
        self.check_services((name,))
        service = self.plan.services[name]
        self.images([name], build)
        if service.depends_on and not no_deps:
            self.up(UpOptions(tuple(service.depends_on)))
        ensure_networks(self, {name})
        ensure_volumes(self, {name})

    def container(self, name: str, index: int = 1) -> ContainerRecord:
        """The ``index``-th container of service ``name`` (``exec``, ``port``)."""
        self.check_services((name,))
        for record in self.containers((name,)):
            if _number(record) == index:
                return record
        raise NotFound(f"service {name!r} is not running" if index == 1 else
                       f"service {name!r} has no container number {index}")

    def _file_mounts(self, service: ServicePlan) -> tuple[MountSpec, ...]:
        """Its secrets and configs from host files, as read-only binds."""
        from dockyard.engine.spec import MountSpec

        for item in service.files:
            if item.missing:
                raise InvalidArgument(f"service {service.name!r}: {item.missing}")
        return tuple(MountSpec("bind", item.source, item.target, readonly=True)
                     for item in service.files if item.source is not None)

    def _copy_files(self, record: ContainerRecord, service: ServicePlan) -> None:
        """Its secrets and configs with content (an environment variable, inline, a
        file with an owner or mode) copied into the created container, as Docker
        Compose does: with their uid/gid/mode (root and 0444 otherwise)."""
        import io
        import tarfile

        items = [f for f in service.files if f.content is not None]
        if not items:
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            made: set[str] = set()
            for item in items:
                parts = item.target.strip("/").split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(parts[:depth])
                    if folder not in made:
                        made.add(folder)
                        info = tarfile.TarInfo(folder)
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                content = item.content or b""
                info = tarfile.TarInfo("/".join(parts))
                info.size, info.mode = len(content), 0o444 if item.mode is None else item.mode
                info.uid, info.gid = item.uid or 0, item.gid or 0
                tar.addfile(info, io.BytesIO(content))
        buffer.seek(0)
        self.engine.container_ops.copy_in(record.id, buffer, "/", owner=None)

    def _start(self, service: ServicePlan | None, record: ContainerRecord) -> None:
        """Started, then its ``post_start`` hooks run in it; a failing hook stops it
        (the compose-spec's rule) and fails the command naming the service."""
        self.report(f"Container {record.name}  Starting")
        self.engine.containers.start(record.id)
        if service is None:
            return
        for hook in service.post_start:
            code, output = self.run_hook(record, hook)
            if code:
                self.engine.containers.stop(record.id)
                raise Unavailable(f"service {service.name!r}: post_start hook "
                                  f"{' '.join(hook.command)!r} exited with status {code} in "
                                  f"container {record.name}: {output.strip()[-500:]}")

    def _stopping(self, record: ContainerRecord) -> None:
        """A running container's ``pre_stop`` hooks, before it is stopped (a failing
        one is reported, the stop goes on)."""
        service = self.plan.services.get(record.spec.labels.get(L.SERVICE, ""))
        if service is None or not service.pre_stop:
            return
        if self.engine.containers.get(record.id).state != "running":
            return
        for hook in service.pre_stop:
            code, output = self.run_hook(record, hook)
            if code:
                self.report(f"Container {record.name}  pre_stop hook exited with status "
                            f"{code}: {output.strip()[-200:]}")

    def run_hook(self, record: ContainerRecord, hook: Hook) -> tuple[int, str]:
        """Run ``hook`` in the container through the runtime's exec (what ``exec``
        runs); its exit code and output."""
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dockyard-hook-") as scratch:
            log = os.path.join(scratch, "runtime.log")
            argv = self.engine.container_ops.exec_argv(
                record.id, hook.command, env=hook.env, user=hook.user,
                workdir=hook.working_dir, log=log)
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  check=False)
            code = done.returncode
            if code:
                code = self.engine.container_ops.exec_failure(log) or \
                    (128 - code if code < 0 else code)
        output = (done.stdout + done.stderr).decode(errors="replace")
        for line in output.splitlines():
            self.report(f"Container {record.name}  | {line}")
        return code, output

    def _remove(self, record: ContainerRecord, timeout: int | None = None, *,
                volumes: bool = True) -> None:
        """Stopped and removed; with its anonymous volumes unless ``volumes`` is False
        (``down`` without ``-v``, as Compose keeps them then; a recreated container,
        whose successor takes them over)."""
        self.report(f"Container {record.name}  Removing")
        self._stopping(record)
        self.engine.containers.stop(record.id, timeout)
        self.engine.containers.remove(record.id, force=True, volumes=volumes)

    def wait_ready(self, services: tuple[str, ...], timeout: float) -> None:
        """``up --wait``: every container of ``services`` (all: none named) running, and
        healthy where it has a healthcheck (a one-shot that exited 0 is done); else an
        error naming the container, after ``timeout`` at the latest."""
        deadline = time.monotonic() + timeout
        for record in self.containers(services):
            service = record.spec.labels.get(L.SERVICE, "")
            if self._has_healthcheck(record):
                self._wait_one(service, record, "service_healthy", deadline, timeout)
                continue
            current = self.engine.containers.get(record.id)
            if current.state in ("exited", "dead") and current.exit_code not in (0, None):
                raise Unavailable(f"container {record.name} exited ({current.exit_code})")
        self.report("Project ready")

    # --- dependencies ------------------------------------------------------------
    def _wait_for_dependencies(self, service: ServicePlan, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for dep, condition in service.depends_on.items():
            if condition == "service_started":
                continue
            for record in self.containers((dep,)):
                self._wait_one(dep, record, condition, deadline, timeout)

    def _wait_one(self, dep: str, record: ContainerRecord, condition: str, deadline: float,
                  timeout: float) -> None:
        while True:
            if condition == "service_healthy":
                if self._health(record) == "healthy":
                    return
                if self._health(record) == "unhealthy":
                    raise Unavailable(f"dependency failed to start: container {record.name} "
                                      f"(service {dep!r}) is unhealthy")
            else:
                record = self.engine.containers.get(record.id)
                if record.state in ("exited", "dead"):
                    if record.exit_code == 0:
                        return
                    raise Unavailable(f"service {dep!r} didn't complete successfully: "
                                      f"exit {record.exit_code}")
            if time.monotonic() > deadline:
                raise Unavailable(f"dependency failed to start: service {dep!r} (container "
                                  f"{record.name}) did not become "
                                  f"{'healthy' if condition == 'service_healthy' else 'done'} "
                                  f"within {timeout:g}s")
            time.sleep(0.1)

    def _health(self, record: ContainerRecord) -> str:
        state = self.engine.containers.inspect(record.id)["State"]
        health = state.get("Health")
        if health is None:
            if not self._has_healthcheck(record):
                raise InvalidArgument(f"container {record.name} has no healthcheck configured "
                                      "(depends_on condition service_healthy)")
            health = {"Status": "starting"}  # its supervisor has not written it yet
        if not state.get("Running") and health.get("Status") != "healthy":
            raise Unavailable(f"dependency failed to start: container {record.name} exited "
                              f"({state.get('ExitCode')})")
        return str(health.get("Status"))

    def _has_healthcheck(self, record: ContainerRecord) -> bool:
        """The container's own check merged with its image's; ``NONE`` or disabled:
        none."""
        return self.engine.containers.healthcheck(record) is not None

    # --- the other verbs -----------------------------------------------------------
    def down(self, *, volumes: bool, remove_orphans: bool, timeout: int | None = None,
             rmi: str | None = None) -> None:
        records = self.containers(one_off=True)  # `run`'s containers go too, as Compose's
        if not remove_orphans:
            records = [r for r in records if r.spec.labels.get(L.SERVICE) in self.plan.services]
        self._dependents_first(records, lambda r: self._remove(r, timeout, volumes=volumes))
        for network in self.plan.networks.values():
            if network.external:
                continue
            try:
                self.engine.networks.get(network.name)
            except NotFound:
                continue
            self.report(f"Network {network.name}  Removing")
            try:
                self.engine.networks.remove(network.name)
            except Conflict:  # a container outside the file (an orphan) still uses it
                self.report(f"Network {network.name}  Resource is still in use")
        if volumes:
            for volume in self.plan.volumes.values():
                if not volume.external and self.engine.volumes.find(volume.name):
                    self.report(f"Volume {volume.name}  Removing")
                    self.engine.volumes.remove(volume.name,
                                               self.engine.containers.volume_users(volume.name))
        if rmi:
            self._remove_images(rmi)

    def _remove_images(self, rmi: str) -> None:
        """``down --rmi local``: the images built for services without an ``image``
        name; ``all``: every service's image.  One still used elsewhere is reported."""
        if rmi not in ("local", "all"):
            raise InvalidArgument(f"invalid --rmi {rmi!r}: want local or all")
        images = []
        for name, service in self.plan.services.items():
            built_here = service.build is not None and \
                service.spec.image == f"{self.plan.name}-{name}"
            if rmi == "all" or built_here:
                images.append(service.spec.image)
        for image in dict.fromkeys(images):
            if not self._has_image(image):
                continue
            self.report(f"Image {image}  Removing")
            try:
                self.engine.images.remove(image)
            except Conflict as exc:
                self.report(f"Image {image}  Resource is still in use: {exc}")

    def stop(self, services: tuple[str, ...] = (), timeout: int | None = None) -> None:
        self.check_services(services)

        def stop(record: ContainerRecord) -> None:
            self.report(f"Container {record.name}  Stopping")
            self._stopping(record)
            self.engine.containers.stop(record.id, timeout)

        self._dependents_first(self.containers(services), stop)

    def _dependents_first(self, records: list[ContainerRecord],
                          action: Callable[[ContainerRecord], None]) -> None:
        """``action`` on every container, a service's only once every service that
        depends on it is done (the reverse of the start order), independent services
        and the replicas of one side by side; containers of services not in the file
        (orphans) at once."""
        groups: dict[str, list[ContainerRecord]] = {}
        for record in records:
            groups.setdefault(record.spec.labels.get(L.SERVICE, ""), []).append(record)
        depends = {n: s.depends_on for n, s in self.plan.services.items()}
        needs = {g: {other for other in groups if other in depends and g in depends[other]}
                 for g in groups}

        def work(group: str) -> None:
            if len(groups[group]) == 1:
                action(groups[group][0])
                return
            replicas = {record.id: record for record in groups[group]}  # side by side
            in_parallel(list(replicas), {i: set() for i in replicas},
                        lambda i: action(replicas[i]), workers=4)

        order = sorted(groups, key=lambda g: -_index_of(list(self.plan.services), g))
        in_parallel(order, needs, work, workers=8)

    def start(self, services: tuple[str, ...] = ()) -> None:
        self.check_services(services)
        order = list(self.plan.services)
        records = sorted(self.containers(services), key=lambda r: _index(order, r))
        if not records:
            raise NotFound("no container to start")
        for record in records:
            if record.state not in ("running", "restarting", "paused"):
                self._start(self.plan.services.get(record.spec.labels.get(L.SERVICE, "")),
                            record)

    def restart(self, services: tuple[str, ...] = (), timeout: int | None = None) -> None:
        self.stop(services, timeout)
        self.start(services)

    def rm(self, services: tuple[str, ...] = (), *, stop: bool = False,
           volumes: bool = False) -> list[str]:
        self.check_services(services)
        removed = []
        for record in self.containers(services):
            if record.state in ("running", "restarting", "paused"):
                if not stop:
                    continue
                self.engine.containers.stop(record.id)
            self.report(f"Container {record.name}  Removing")
            self.engine.containers.remove(record.id, force=True, volumes=volumes)
            removed.append(record.name)
        return removed


def _renamed(exc: DockyardError, message: str) -> DockyardError:
    """The same error (kind, exit code) with a message that names where it happened."""
    import copy

    out = copy.copy(exc)
    out.message = message
    out.args = (message,)
    return out


def in_parallel(order: list[str], needs: dict[str, set[str]],
                work: Callable[[str], None], workers: int = 4) -> None:
    """``work`` for every name, each once all it ``needs`` are done, independent ones
    at the same time; the first error stops what has not begun and is raised once
    what runs has ended."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    done: set[str] = set()
    running: dict[Future[None], str] = {}
    pending = list(order)
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while pending or running:
            if error is None:
                for name in [n for n in pending if needs[n] <= done]:
                    pending.remove(name)
                    running[pool.submit(work, name)] = name
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                exc = future.exception()
                if exc is not None:
                    error = error or exc
                else:
                    done.add(name)
    if error is not None:
        raise error


def _number(record: ContainerRecord) -> int:
    try:
        return int(record.spec.labels.get(L.NUMBER, "0"))
    except ValueError:
        return 0


def _index_of(order: list[str], service: str) -> int:
    return order.index(service) if service in order else len(order)


def _index(order: list[str], record: ContainerRecord) -> int:
    service = record.spec.labels.get(L.SERVICE, "")
    return order.index(service) if service in order else len(order)

