"""kube input: schema validation (kubernetes-validate, strict), unsupported kinds and
fields reported one by one, selectors checked, all before anything is applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument, NotImplementedFeature
from dockyard.kube.load import KubeObject, load_files, load_text, schema_error

DATA = Path(__file__).parent.parent / "data" / "kube"

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec:
  containers:
  - {name: main, image: box:1}
"""


def _load(tmp_path: Path, text: str) -> list[KubeObject]:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    return load_files([path])


def test_the_canonical_example_loads() -> None:
    objects = load_files([DATA / "myapp.yaml"])
    assert [o.ref for o in objects] == ["ConfigMap/myapp-config", "Deployment/myapp",
                                        "Service/myapp"]
    assert objects[1].owner == "default.Deployment.myapp"
    assert objects[1].source.endswith("myapp.yaml#2")


def test_an_unknown_kind_is_named(tmp_path: Path) -> None:
    text = POD + "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\n"
    with pytest.raises(NotImplementedFeature, match=r"unsupported kind CronJob .*#2: "
                                                    r"CronJob/nightly"):
        _load(tmp_path, text)


def test_an_invalid_field_names_the_document_and_path(tmp_path: Path) -> None:
    text = POD.replace("image: box:1", "image: box:1, bogus: 1")
    with pytest.raises(InvalidArgument) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert "Pod/solo" in message
    assert "spec.containers[0]" in message and "'bogus' was unexpected" in message


def test_a_wrong_type_is_a_schema_error() -> None:
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    assert schema_error(doc) == "spec.replicas: 'three' is not of type 'integer', 'null'"


def test_unsupported_fields_are_each_reported(tmp_path: Path) -> None:
    text = POD.replace("  containers:", "  hostNetwork: true\n  nodeName: n1\n  containers:")
    text = text.replace("image: box:1}", "image: box:1, lifecycle: {postStart: {tcpSocket: "
                        "{port: 80}}}}")
    with pytest.raises(NotImplementedFeature) as caught:
        _load(tmp_path, text)
    assert "(and 2 more)" in caught.value.message
    lines = str(caught.value.hint).splitlines()
    assert sum("unsupported field" in line for line in lines) == 3
    for field in ("spec.hostNetwork", "spec.nodeName",
                  "spec.containers[0].lifecycle.postStart.tcpSocket (deprecated: "):
        assert any(field in line and "Pod/solo" in line for line in lines), field


def test_a_service_selecting_nothing_is_refused(tmp_path: Path) -> None:
    text = POD + ("---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
                  "  selector: {app: nothing}\n  ports: [{port: 80}]\n")
    with pytest.raises(InvalidArgument, match=r"Service/web .*spec.selector .* matches no pod"):
        _load(tmp_path, text)


def test_a_deployment_selector_must_match_its_template(tmp_path: Path) -> None:
    text = (DATA / "myapp.yaml").read_text().replace("matchLabels:\n      app: myapp",
                                                      "matchLabels:\n      app: other")
    with pytest.raises(InvalidArgument, match="Deployment/myapp .*selector does not match"):
        _load(tmp_path, text)


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(InvalidArgument, match=r"x.yaml:2: invalid YAML: mapping values are "
                                              "not allowed here"):
        load_text("a: 1\nb: c: d\n", "x.yaml", [])


def test_pod_level_fields_outside_the_supported_set_are_reported(tmp_path: Path) -> None:
    text = POD.replace("  containers:", "  dnsPolicy: Default\n  securityContext: "
                       "{fsGroup: 2, seLinuxOptions: {level: s0}}\n  containers:").replace(
        "image: box:1}", "image: box:1, imagePullPolicy: Always}")
    with pytest.raises(NotImplementedFeature) as caught:
        _load(tmp_path, text)
    hint = str(caught.value.hint)
    assert "fsGroup" not in hint
    for field in ("spec.dnsPolicy=Default", "spec.securityContext.seLinuxOptions",
                  "spec.containers[0].imagePullPolicy=Always"):
        assert field in hint, field


def test_a_replica_set_is_a_replicated_kind(tmp_path: Path) -> None:
    from dockyard.kube.lower import Context
    from dockyard.kube.play import plan_pods

    text = (DATA / "myapp.yaml").read_text().replace("kind: Deployment", "kind: ReplicaSet")
    objects = _load(tmp_path, text)
    plans = plan_pods(objects, Context("kube-default", "default", {"ConfigMap/myapp-config": {
        "GREETING": "hello"}}, {}))
    assert [owner for owner, _ in plans] == ["default.ReplicaSet.myapp"] * 3
    with pytest.raises(InvalidArgument, match=r"ReplicaSet/myapp .*'strategy' was unexpected"):
        _load(tmp_path, text.replace("  replicas: 3", "  replicas: 3\n  strategy: {}"))


def test_volume_source_fields_outside_the_supported_set_are_reported(tmp_path: Path) -> None:
    text = POD.replace("  containers:", "  volumes:\n  - {name: c, configMap: {name: c, "
                       "defaultMode: 256}}\n  - {name: s, secret: {secretName: s, items: "
                       "[{key: k, path: p}]}}\n  - {name: e, emptyDir: {sizeLimit: 1Mi}}\n"
                       "  containers:")
    with pytest.raises(NotImplementedFeature) as caught:
        _load(tmp_path, text)
    hint = str(caught.value.hint)
    for field in ("spec.volumes[0].configMap.defaultMode", "spec.volumes[1].secret.items",
                  "spec.volumes[2].emptyDir.sizeLimit"):
        assert field in hint, field


def test_probes_and_hooks_of_an_init_container_are_refused(tmp_path: Path) -> None:
    text = POD.replace("  containers:", "  initContainers:\n  - {name: i, image: box:1, "
                       "readinessProbe: {exec: {command: [t]}}, lifecycle: {preStop: "
                       "{sleep: {seconds: 1}}}}\n  containers:")
    with pytest.raises(NotImplementedFeature) as caught:
        _load(tmp_path, text)
    hint = str(caught.value.hint)
    for field in ("spec.initContainers[0].lifecycle (Forbidden: may not be set for init",
                  "spec.initContainers[0].readinessProbe (Forbidden"):
        assert field in hint, field
