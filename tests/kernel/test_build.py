"""``dockyard build`` for real: the Dockerfile corpus under tests/data/build, built on a
busybox base, with the image config and the file tree asserted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.trees import Entry, tree

pytestmark = pytest.mark.root
CORPUS = Path(__file__).resolve().parents[1] / "data" / "build"


def _build(cli: Dockyard, case: str, tmp: Path, *args: str) -> tuple[str, dict[str, Entry]]:
    out = tmp / f"tree-{case}-{len(list(tmp.iterdir()))}"
    result = cli("build", "--progress", "plain", "-o", f"type=local,dest={out}", *args,
                 str(CORPUS / case), env={"DY_TEST_TOKEN": "s3cr3t"})
    image_id = result.stdout.strip().splitlines()[-1]
    assert image_id.startswith("sha256:")
    return image_id, tree(out)


def _config(cli: Dockyard, ref: str) -> dict[str, Any]:
    inspected: dict[str, Any] = json.loads(cli("image", "inspect", ref).stdout)[0]
    return inspected


def test_multistage_arg_scoping_and_skipped_stage(box: Dockyard, tmp_path: Path) -> None:
    image_id, files = _build(box, "multistage", tmp_path, "-t", "multi:1",
                             "--build-arg", "VERSION=2.5")
    assert files["app/version.txt"].content == "version=2.5 only=here\n"
    assert files["app/tool.txt"].content == "tool\n"
    assert files["app/scope.txt"].content == "in final: ONLY_HERE=''\n"  # ARGs are per stage
    inspected = _config(box, "multi:1")
    assert inspected["Id"] == image_id
    assert "APP_VERSION=2.5" in inspected["Config"]["Env"]
    assert inspected["Config"]["Cmd"] == ["cat", "/app/version.txt"]
    run = box("run", "--rm", "--network", "none", "multi:1")
    assert run.stdout == "version=2.5 only=here\n"
    # the target picks a stage; the broken stage fails only when asked for
    failed = box("build", "--target", "broken", str(CORPUS / "multistage"), check=False)
    assert failed.returncode != 0
    assert "Dockerfile:9" in failed.stderr and "exit code: 1" in failed.stderr


def test_heredocs(box: Dockyard, tmp_path: Path) -> None:
    _image, files = _build(box, "heredocs", tmp_path)
    assert files["data/script.txt"].content == "line one\nhello world\n"
    assert files["data/shebang.txt"].content.startswith("from a shebang script: /")
    assert files["data/copied.txt"].content == "greeting for world\n"
    assert files["data/literal.txt"].content == "kept as ${WHO}\n"
    assert files["data/two.txt"].content == "first\nsecond\n"


def test_run_mounts_cache_secret_bind_tmpfs_network(box: Dockyard, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    args = ("--secret", f"id=token,src={secret}")
    _image, files = _build(box, "mounts", tmp_path, *args)
    import hashlib

    assert files["token-hash.txt"].content == hashlib.sha256(b"s3cr3t").hexdigest()[:16] + "\n"
    assert files["token-mode.txt"].content == "-r--------\n"
    assert files["runs.txt"].content == "1\n"
    assert files["absent.txt"].content == "ok\n"
    assert files["from-bind.txt"].content == "bound input\n"
    assert files["links.txt"].content == "lo\n"
    # nothing a mount brought in (or the mount point made for it) is in the image
    for path in ("cache", "run/secrets", "src", "scratch"):
        assert path not in files, path
    # the cache mount outlives the build: with --no-cache the step runs again and sees it
    _image, again = _build(box, "mounts", tmp_path, "--no-cache", *args)
    assert again["runs.txt"].content == "2\n"
    # a secret from an environment variable (kept in memory, gone after the build)
    _image, from_env = _build(box, "mounts", tmp_path, "--no-cache", "--secret",
                              "id=token,env=DY_TEST_TOKEN")
    assert from_env["token-hash.txt"].content == hashlib.sha256(b"s3cr3t").hexdigest()[:16] \
        + "\n"
    # a required secret that is not given fails the step before it runs
    failed = box("build", "--no-cache", str(CORPUS / "mounts"), check=False)
    assert failed.returncode != 0 and "secret token not found" in failed.stderr


def test_dockerignore_with_exceptions(box: Dockyard, tmp_path: Path) -> None:
    _image, files = _build(box, "ignore", tmp_path)
    copied = sorted(p.removeprefix("ctx/") for p, e in files.items()
                    if p.startswith("ctx/") and e.kind == "file")
    assert copied == [".dockerignore", "Dockerfile", "deep/er/normal.txt", "docs/keep.md",
                      "important.log", "src/main.py"]


def test_dockerfile_specific_ignore_file(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    shutil.copytree(CORPUS / "ignore", context)
    (context / "app.Dockerfile").write_text("FROM box:1\nCOPY . /ctx/\n")
    (context / "app.Dockerfile.dockerignore").write_text("*\n!src\n")
    out = tmp_path / "out"
    box("build", "-q", "-f", str(context / "app.Dockerfile"), "-o",
        f"type=local,dest={out}", str(context))
    assert sorted(p.name for p in (out / "ctx").iterdir()) == ["src"]


def test_non_root_user_chown_chmod_workdir(box: Dockyard, tmp_path: Path) -> None:
    _image, files = _build(box, "chown", tmp_path)
    work = "home/app/work"
    assert files[work][:4] == ("dir", 0o755, 1000, 1000)  # WORKDIR made for USER app
    assert files[f"{work}/files/a.txt"][2:4] == (1000, 1000)
    assert files[f"{work}/files/run.sh"][2:4] == (1000, 1000)
    assert files["opt/numeric.txt"][2:4] == (1000, 1000)  # --chown=UID: gid = uid
    assert files["opt/run.sh"][1:4] == (0o750, 0, 0)
    assert files[f"{work}/whoami.txt"].content == "1000\n"
    assert files[f"{work}/made-by-run"][2:4] == (1000, 1000)


def test_onbuild_triggers_run_in_the_child(box: Dockyard, tmp_path: Path) -> None:
    box("build", "-q", "-t", "onbuild-parent:1", "-f",
        str(CORPUS / "onbuild" / "Dockerfile.parent"), str(CORPUS / "onbuild"))
    parent = _config(box, "onbuild-parent:1")["Config"]
    assert parent["OnBuild"] == ["COPY trigger.txt /from-trigger.txt",
                                 'RUN echo "trigger ran" > /onbuild-ran.txt']
    _image, files = _build(box, "onbuild", tmp_path, "-t", "onbuild-child:1")
    assert files["seen.txt"].content == "from the child context\n"
    assert files["onbuild-ran.txt"].content == "trigger ran\n"
    assert not _config(box, "onbuild-child:1")["Config"].get("OnBuild")


def test_config_fields_add_and_history(box: Dockyard, tmp_path: Path) -> None:
    image_id, files = _build(box, "config", tmp_path, "-t", "cfg:1", "--label", "extra=yes")
    config = _config(box, "cfg:1")
    c = config["Config"]
    assert c["Labels"] == {"maintainer": "dockyard tests", "org.example.version": "2",
                           "extra": "yes"}
    assert config["Author"] == "someone@example.com"
    assert c["Env"][0].startswith("PATH=/app/bin:") and "MODE=production" in c["Env"]
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/var/data": {}}
    assert c["StopSignal"] == "SIGTERM"
    assert c["Healthcheck"]["Test"][0] == "CMD-SHELL" and c["Healthcheck"]["Retries"] == 3
    assert c["WorkingDir"] == "/app"
    assert c["Entrypoint"] == ["/bin/sh", "-c"] and c["Cmd"] == ["echo hello"]
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert files["app/unpacked/inner/file.txt"].content == "inside\n"  # ADD unpacked the tar
    assert files["app/plain.txt"].content == "plain\n"
    assert files["app/mode.txt"].content == "production\n"
    assert config["Id"] == image_id
    lines = box("image", "history", "--format", "json", "cfg:1").stdout.splitlines()
    created_by = [json.loads(line)["CreatedBy"] for line in lines]
    assert any(c.startswith("EXPOSE") for c in created_by)
    run = box("run", "--rm", "--network", "none", "cfg:1")
    assert run.stdout == "hello\n"


def test_cache_hits_start_nothing_and_follow_the_context(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    shutil.copytree(CORPUS / "ignore", context)
    (context / "Dockerfile").write_text(
        "FROM box:1\nCOPY src/ /src/\nRUN cat /src/main.py > /out.txt\n")
    first = box("build", "--progress", "plain", str(context))
    assert "CACHED" not in first.stderr
    second = box("build", "--progress", "plain", str(context))
    assert second.stderr.count("CACHED") == 2
    assert second.stdout == first.stdout  # same image
    (context / "debug.log").write_text("ignored change")  # excluded: still cached
    assert box("build", "--progress", "plain", str(context)).stderr.count("CACHED") == 2
    (context / "src" / "main.py").write_text("changed\n")
    third = box("build", "--progress", "plain", "-o", f"type=local,dest={tmp_path / 'o'}",
                str(context))
    assert third.stderr.count("CACHED") == 0
    assert (tmp_path / "o" / "out.txt").read_text() == "changed\n"


def test_reproducible_with_source_date_epoch(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a.txt").write_text("a\n")
    (context / "Dockerfile").write_text(
        "FROM box:1\nCOPY a.txt /a.txt\nRUN echo built > /b.txt && mkdir -p /d/e\n")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    ids = {box("build", "-q", "--no-cache", str(context), env=env).stdout.strip()
           for _ in range(2)}
    assert len(ids) == 1


def test_build_errors_name_the_line_and_leave_nothing(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    cases = {
        "FROM box:1\nRUN true\nFROBNICATE now\n": "Dockerfile:3: unknown instruction: FROBNICATE",
        "FROM box:1\nCOPY --bogus a b\n": "Dockerfile:2: unknown flag: --bogus",
        "FROM box:1\nCOPY missing.txt /x\n": "Dockerfile:2: COPY failed: file not found",
        "FROM box:1\nRUN echo about to fail; echo details >&2; exit 3\n":
            "exit code: 3",
        "FROM box:1 AS a\nCOPY --from=b /x /y\nFROM box:1 AS b\nFROM a\n":
            "not defined before it",
    }
    images_before = box("images", "-q", "-a").stdout
    for dockerfile, message in cases.items():
        (context / "Dockerfile").write_text(dockerfile)
        result = box("build", "--progress", "plain", str(context), check=False)
        assert result.returncode == 1, dockerfile
        assert message in result.stderr, (dockerfile, result.stderr)
    (context / "Dockerfile").write_text("FROM box:1\nRUN echo about to fail; exit 3\n")
    failing = box("build", str(context), check=False)
    assert "about to fail" in failing.stderr  # the tail of the step's output
    assert box("images", "-q", "-a").stdout == images_before
    assert box("system", "check").returncode == 0
    assert not list((box.root / "snapshots" / "active").iterdir())
    target = box("build", "--target", "nope", str(context), check=False)
    assert 'target stage "nope" could not be found' in target.stderr


def test_context_and_dockerfile_from_stdin(box: Dockyard, tmp_path: Path) -> None:
    import io
    import tarfile

    dockerfile = b"FROM box:1\nRUN echo piped > /piped.txt\nCMD [\"cat\", \"/piped.txt\"]\n"
    image = box("build", "-q", "-t", "piped:1", "-", input=dockerfile).stdout.strip()
    assert box("run", "--rm", "--network", "none", image).stdout == "piped\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("Dockerfile", b"FROM box:1\nCOPY hi.txt /hi.txt\n"),
                           ("hi.txt", b"hi from a tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    box("build", "-q", "-o", f"type=local,dest={out}", "-", input=buffer.getvalue())
    assert (out / "hi.txt").read_text() == "hi from a tar\n"


def test_outputs_oci_and_docker_archives(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM box:1\nRUN echo x > /x\n")
    oci = tmp_path / "image.oci.tar"
    docker = tmp_path / "image.docker.tar"
    box("build", "-q", "-t", "out:1", "-o", f"type=oci,dest={oci}", "-o",
        f"type=docker,dest={docker}", str(context))
    import tarfile

    with tarfile.open(oci) as archive:
        assert "index.json" in archive.getnames() and "oci-layout" in archive.getnames()
    with tarfile.open(docker) as archive:
        assert "manifest.json" in archive.getnames()
    rootfs_tar = tmp_path / "rootfs.tar"
    box("build", "-q", "-o", f"type=tar,dest={rootfs_tar}", str(context))
    with tarfile.open(rootfs_tar) as archive:
        member = archive.extractfile("x")
        assert member is not None and member.read() == b"x\n"
    # builder prune forgets the cache: the next build runs its step again
    assert "CACHED" in box("build", "--progress", "plain", str(context)).stderr
    pruned = box("builder", "prune", "-f").stdout
    assert "Deleted build cache objects: " in pruned and not pruned.startswith(
        "Deleted build cache objects: 0")
    assert "CACHED" not in box("build", "--progress", "plain", str(context)).stderr


def test_parents_url_digest_platform_and_tty(box: Dockyard, tmp_path: Path) -> None:
    import hashlib
    import http.server
    import shutil as sh
    import subprocess
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("fetched over http\n")
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,),
                   {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        context = tmp_path / "ctx"
        (context / "a" / "b").mkdir(parents=True)
        (context / "a" / "b" / "deep.txt").write_text("deep\n")
        digest = json.loads(box("image", "inspect", "box:1").stdout)[0]["Id"]
        url = f"http://127.0.0.1:{server.server_port}/remote.txt"
        checksum = "sha256:" + hashlib.sha256(b"fetched over http\n").hexdigest()
        (context / "Dockerfile").write_text(
            f"FROM --platform=$BUILDPLATFORM {digest}\n"
            "COPY --parents a/b/deep.txt /keep/\n"
            f"ADD --checksum={checksum} {url} /downloads/\n")
        out = tmp_path / "out"
        box("build", "-q", "-o", f"type=local,dest={out}", str(context))
        assert (out / "keep" / "a" / "b" / "deep.txt").read_text() == "deep\n"
        remote = out / "downloads" / "remote.txt"
        assert remote.read_text() == "fetched over http\n"
        assert remote.stat().st_mode & 0o777 == 0o600  # Docker's mode for URL files
        (context / "Dockerfile").write_text(
            f"FROM box:1\nADD --checksum=sha256:{'0' * 64} {url} /x\n")
        failed = box("build", str(context), check=False)
        assert "does not match --checksum" in failed.stderr
        (context / "Dockerfile").write_text("FROM --platform=linux/s390x box:1\n")
        failed = box("build", str(context), check=False)
        assert "only the host platform" in failed.stderr
    finally:
        server.shutdown()
        server.server_close()
    # the live view on a terminal (driven through script(1)'s pty)
    if sh.which("script") is None:
        pytest.skip("script(1) (bsdutils) is not installed")
    (context / "Dockerfile").write_text("FROM box:1\nRUN echo on a tty > /tty.txt\n")
    command = " ".join([*box.argv, "--root", str(box.root), "build", str(context)])
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                            timeout=120, env=box.env, check=False)
    text = result.stdout.decode(errors="replace")
    assert result.returncode == 0, text
    assert "[2/2] RUN echo on a tty" in text and "writing image sha256:" in text


def test_a_killed_build_leaves_what_system_check_repairs(box: Dockyard, tmp_path: Path) -> None:
    import glob
    import signal
    import subprocess
    import time

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM box:1\nRUN touch /started && sleep 2\n")
    process = subprocess.Popen([*box.argv, "--root", str(box.root), "build", "--progress",
                                "plain", str(context)], env=box.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    for line in process.stdout:  # wait for the RUN step to begin, then kill the build
        if b"RUN touch" in line:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    deadline = time.monotonic() + 15  # the step's container ends by itself (sleep 2)
    while glob.glob(f"/sys/fs/cgroup/*/dockyard-{box.layout.owner_tag}-build-*") \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    check = box("system", "check", check=False)
    assert check.returncode == 1 and "left behind by a build that is gone" in check.stdout
    box("system", "check", "--repair", check=False)
    assert box("system", "check").returncode == 0
    assert not [p for p in (box.root / "snapshots" / "active").iterdir()]


def test_concurrent_builds_of_the_same_layers(box: Dockyard, tmp_path: Path) -> None:
    """Three builds at once making identical layers (SOURCE_DATE_EPOCH): all succeed,
    agree on the image, and leave the store consistent."""
    import subprocess

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "f.txt").write_text("same\n")
    (context / "Dockerfile").write_text(
        "FROM box:1\nCOPY f.txt /f.txt\nRUN echo same > /g.txt\n")
    env = {**box.env, "SOURCE_DATE_EPOCH": "1700000000"}
    builds = [subprocess.Popen([*box.argv, "--root", str(box.root), "build", "-q",
                                "--no-cache", str(context)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(3)]
    results = [build.communicate(timeout=120) for build in builds]
    assert all(build.returncode == 0 for build in builds), [r[1] for r in results]
    assert len({out.strip() for out, _err in results}) == 1
    assert box("system", "check").returncode == 0


def test_independent_stages_build_in_parallel(box: Dockyard, tmp_path: Path) -> None:
    """Two stages that can only finish together (each waits for the other's mark in a
    shared cache mount): built one after the other, the first would give up."""
    context = tmp_path / "ctx"
    context.mkdir()
    wait_for = ("RUN --mount=type=cache,id=rendezvous,target=/meet "
                "touch /meet/{me} && i=0; while [ ! -e /meet/{other} ] && [ $i -lt 100 ]; "
                "do sleep 0.1; i=$((i+1)); done; test -e /meet/{other} && echo {me} > /done\n")
    (context / "Dockerfile").write_text(
        "FROM box:1 AS left\n" + wait_for.format(me="left", other="right") +
        "FROM box:1 AS right\n" + wait_for.format(me="right", other="left") +
        "FROM box:1\nCOPY --from=left /done /left\nCOPY --from=right /done /right\n")
    out = tmp_path / "out"
    box("build", "-q", "--no-cache", "-o", f"type=local,dest={out}", str(context))
    assert (out / "left").read_text() == "left\n" and (out / "right").read_text() == "right\n"


def test_build_contexts_and_an_inline_cache(box: Dockyard, tmp_path: Path) -> None:
    """``--build-context NAME=DIR|docker-image://REF`` (``FROM NAME``, ``COPY
    --from=NAME``); ``--cache-to type=inline`` then ``--cache-from`` that image: the
    local cache forgotten, its RUN step is not run again."""
    context, extra = tmp_path / "ctx", tmp_path / "extra"
    context.mkdir()
    extra.mkdir()
    (extra / "f").write_text("extra\n")
    (context / "Dockerfile").write_text(
        "FROM base\nCOPY --from=more f /f\nRUN head -c 16 /dev/urandom | od -x > /r\n")
    out = tmp_path / "out"
    box("build", "-q", "-t", "ctx:1", "--build-context", f"more={extra}",
        "--build-context", "base=docker-image://box:1", "--cache-to", "type=inline",
        "-o", f"type=local,dest={out}", str(context))
    assert (out / "f").read_text() == "extra\n"
    first = (out / "r").read_text()
    box("builder", "prune", "-f")
    again = tmp_path / "again"
    box("build", "-q", "-t", "ctx:2", "--build-context", f"more={extra}",
        "--build-context", "base=docker-image://box:1", "--cache-from", "ctx:1",
        "-o", f"type=local,dest={again}", str(context))
    assert (again / "r").read_text() == first
    refused = box("build", "-q", "--build-context", "more=https://example.invalid/x",
                  str(context), check=False)
    assert refused.returncode != 0 and "only a directory or docker-image" in refused.stderr
