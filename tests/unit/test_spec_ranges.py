"""``engine.containers.check_spec_ranges``: what dockerd refuses at create, in its words,
for a spec from any front end (CLI, API, compose, kube)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dockyard.engine.container_ops import ContainerOps
from dockyard.engine.containers import check_spec_ranges
from dockyard.engine.spec import ContainerSpec, Healthcheck
from dockyard.errors import InvalidArgument

CHECK = Healthcheck(("CMD", "true"))


@pytest.mark.parametrize(("spec", "message"), [
    (ContainerSpec(image="x", memory_reservation=1 << 20),
     "Minimum memory reservation allowed is 6MB"),
    (ContainerSpec(image="x", memory=32 << 20, memory_reservation=64 << 20),
     "Minimum memory limit can not be less than memory reservation limit"),
    (ContainerSpec(image="x", healthcheck=CHECK._replace(interval=-2.0)),
     "Interval in Healthcheck cannot be less than 1ms"),
    (ContainerSpec(image="x", healthcheck=CHECK._replace(start_interval=-1.0)),
     "StartInterval in Healthcheck cannot be less than 1ms"),
    (ContainerSpec(image="x", healthcheck=CHECK._replace(timeout=1e-6)),
     "Timeout in Healthcheck cannot be less than 1ms"),
])
def test_refused(spec: ContainerSpec, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_spec_ranges(spec)


def test_accepted() -> None:
    check_spec_ranges(ContainerSpec(image="x", memory=64 << 20, memory_reservation=32 << 20,
                                    healthcheck=CHECK))  # unset start period and interval
    check_spec_ranges(ContainerSpec(image="x", healthcheck=CHECK._replace(interval=0.0)))
    # (0 is Docker's "the default": the supervisor checks every 30 s then)
    check_spec_ranges(ContainerSpec(image="x", memory_reservation=6 << 20))
    # a disabled or image-inherited check is not the container's to range-check
    check_spec_ranges(ContainerSpec(image="x", healthcheck=Healthcheck(interval=0.0)))


def _stored(spec: ContainerSpec) -> tuple[ContainerOps, list[str]]:
    """ContainerOps over a stub service holding one exited container of ``spec``."""
    saved: list[str] = []
    record = SimpleNamespace(id="c", spec=spec, state="exited")
    service = SimpleNamespace(get=lambda ref: record, store=SimpleNamespace(
        update=lambda cid, spec: saved.append(spec)))
    return ContainerOps(service), saved  # type: ignore[arg-type]


def test_update_judges_what_it_changes_not_an_old_records_other_fields() -> None:
    old = ContainerSpec(image="x", healthcheck=CHECK._replace(interval=1e-9),
                        memory_reservation=1 << 20)  # accepted by older versions
    ops, saved = _stored(old)
    ops.update("c", pids_limit=100)
    assert len(saved) == 1
    ops.update("c", memory_reservation=0)  # 0: unchanged, as Docker's
    assert '"memory_reservation": 1048576' in saved[-1]
    ops, saved = _stored(ContainerSpec(image="x", memory_reservation=32 << 20))
    with pytest.raises(InvalidArgument, match="memory reservation limit"):
        ops.update("c", memory=16 << 20)  # the new limit against the kept reservation
    assert saved == []
