"""A project's networks and volumes made to match the plan, as Docker Compose does.

Each carries Compose's ``com.docker.compose.config-hash`` label.  A network of the
project whose hash no longer matches (its ``internal``, subnet, labels… changed) is
made again: the project's containers on it are stopped and taken off it, the network
is removed and created anew, the containers are put back on it (converge then starts
them again: the same containers, as Compose keeps them).  A volume whose hash no
longer matches is kept, with Compose's warning: making it again would lose its data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.compose import labels as L
from dockyard.errors import NotFound

if TYPE_CHECKING:
    from dockyard.compose.converge import Project
    from dockyard.compose.plan import NetworkPlan
    from dockyard.network.store import NetworkRecord


def ensure_networks(project: Project, selected: set[str]) -> bool:
    """The networks the ``selected`` services use; True when one was made again (its
    containers were stopped)."""
    plan = project.plan
    wanted = {a.network for n in selected for a in plan.services[n].networks}
    remade = False
    for network in plan.networks.values():
        if network.name not in wanted:
            continue
        try:
            record = project.engine.networks.get(network.name)
        except NotFound:
            if network.external:
                raise NotFound(f"network {network.name} declared as external, but could "
                               "not be found") from None
            record = None
        if record is not None and not _diverged(project, network, record):
            continue
        if record is not None:
            if not _take_down(project, network):
                continue
            remade = True
        project.report(f"Network {network.name}  Creating")
        project.engine.networks.create(network.name, internal=network.internal,
                                       labels=network.labels, subnet=network.subnet,
                                       gateway=network.gateway)
        if remade:
            _reconnect(project, network)
    return remade


def _diverged(project: Project, network: NetworkPlan, record: NetworkRecord) -> bool:
    """The project's own network, made from another configuration (one made before
    the hash label, or by someone else, is left as it is)."""
    if network.external or record.labels.get(L.PROJECT) != project.plan.name:
        return False
    found = record.labels.get(L.CONFIG_HASH)
    return found is not None and found != network.config_hash


def _take_down(project: Project, network: NetworkPlan) -> bool:
    """The project's containers off the network (stopped first) and the network
    removed; False (and nothing done) when a container of another project or none
    is on it."""
    from dockyard.engine.container_network import disconnect

    engine = project.engine
    users = {e.container_id for e in engine.networks.endpoints(network=network.name)}
    ours = [r for r in project.containers(one_off=True)
            if r.id in users or r.spec.network_mode == network.name]
    if users - {r.id for r in ours}:
        project.report(f"Network {network.name}  has changed, but containers outside the "
                       "project use it: kept as it is")
        return False
    for record in ours:
        if record.state in ("running", "restarting", "paused"):
            project.report(f"Container {record.name}  Stopping")
            engine.containers.stop(record.id)
            project.report(f"Container {record.name}  Stopped")
    for record in ours:
        if record.id in users:
            disconnect(engine.containers, engine.containers.get(record.id), network.name)
    engine.networks.remove(network.name)
    project.report(f"Network {network.name}  Removed")
    return True


def _reconnect(project: Project, network: NetworkPlan) -> None:
    """The project's containers for which the network is not the first (that one
    they join when they start) put back on it, with their aliases and addresses."""
    from dockyard.engine.container_network import connect

    for record in project.containers(one_off=True):
        service = project.plan.services.get(record.spec.labels.get(L.SERVICE, ""))
        if service is None or record.spec.network_mode == network.name:
            continue
        for attachment in service.networks[1:]:
            if attachment.network == network.name:
                one_off = record.spec.labels.get(L.ONEOFF) == "True"
                connect(project.engine.containers, record, network.name,
                        () if one_off else attachment.aliases, attachment.ip)


def ensure_volumes(project: Project, selected: set[str]) -> None:
    """The named volumes the ``selected`` services mount; one whose configuration
    changed is kept, with Compose's warning."""
    plan = project.plan
    wanted = {m.source for n in selected for m in plan.services[n].spec.mounts
              if m.type == "volume" and m.source}
    for volume in plan.volumes.values():
        if volume.name not in wanted:
            continue
        found = project.engine.volumes.find(volume.name)
        if found is not None:
            labels = found.labels or {}
            if not volume.external and labels.get(L.PROJECT) == plan.name and \
                    labels.get(L.CONFIG_HASH) not in (None, volume.config_hash):
                project.report(f'Volume "{volume.name}" exists but doesn\'t match '
                               "configuration in compose file: kept (its data would be "
                               "lost; `down -v` removes it)")
            continue
        if volume.external:
            raise NotFound(f"external volume {volume.name!r} not found")
        project.report(f"Volume {volume.name}  Creating")
        project.engine.volumes.create(volume.name, options=volume.options,
                                      labels=volume.labels)
