"""Instructions that change only the image config (ENV, LABEL, USER, EXPOSE, VOLUME,
CMD, ENTRYPOINT, SHELL, HEALTHCHECK, STOPSIGNAL, ONBUILD, MAINTAINER): pure
functions over the config dict, in the exact shapes ``docker inspect`` shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dockyard.build.instructions import Instruction, trigger_text
from dockyard.build.shellwords import expand_word, expand_words

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def env_map(config: Mapping[str, Any]) -> dict[str, str]:
    result = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    env = [e for e in (config.get("Env") or []) if e.partition("=")[0] != key]
    existing = [e.partition("=")[0] for e in (config.get("Env") or [])]
    if key in existing:  # keep its place, as Docker does
        env.insert(existing.index(key), f"{key}={value}")
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def pairs(instruction: Instruction, env: Mapping[str, str],
          escape: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments (the parser gives key, value, key, value …), expanded."""
    words = instruction.args
    if len(words) % 2:
        raise instruction.error(f"{instruction.cmd} must have two arguments")
    result = []
    for key, value in zip(words[::2], words[1::2], strict=True):
        key = expand_word(key, env, escape)
        if not key:
            raise instruction.error(f"{instruction.cmd} names can not be blank")
        result.append((key, expand_word(value, env, escape)))
    return result


def command_form(instruction: Instruction, shell: list[str]) -> list[str]:
    """Exec form as written; shell form wrapped in the current SHELL."""
    if instruction.json:
        return list(instruction.args)
    text = " ".join(instruction.args)
    return [*shell, text] if text else []


def parse_duration(text: str, instruction: Instruction, flag: str) -> int:
    """Go's time.ParseDuration subset Docker accepts: "30s", "1m30s", "500ms"."""
    if not text:
        return 0
    position = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise instruction.error(f"invalid duration for --{flag}: {text!r}")
    return int(total)


def healthcheck(instruction: Instruction, shell: list[str]) -> dict[str, Any]:
    words = instruction.args
    kind = words[0].upper() if words else ""
    if kind == "NONE":
        if len(words) > 1 or instruction.flags:
            raise instruction.error("HEALTHCHECK NONE takes no other arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise instruction.error(f"unknown type {kind!r} in HEALTHCHECK (try CMD)")
    test = ["CMD", *words[1:]] if instruction.json else ["CMD-SHELL", " ".join(words[1:])]
    check: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = instruction.flag(flag)
        if value:
            check[key] = parse_duration(value, instruction, flag)
    retries = instruction.flag("retries")
    if retries:
        if not retries.isdigit() or int(retries) < 1:
            raise instruction.error(f"--retries must be a positive integer, not {retries!r}")
        check["Retries"] = int(retries)
    return check


def apply_metadata(config: dict[str, Any], instruction: Instruction, env: Mapping[str, str],
                   escape: str, base_cmd_from_image: bool) -> str:
    """Apply one metadata instruction to ``config`` (the image's ``config`` object);
    returns the text for the image history's ``created_by``."""
    cmd = instruction.cmd
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    if cmd == "ENV":
        values = pairs(instruction, env, escape)
        for key, value in values:
            set_env(config, key, value)
        return "ENV " + " ".join(f"{k}={v}" for k, v in values)
    if cmd == "LABEL":
        values = pairs(instruction, env, escape)
        labels = dict(config.get("Labels") or {})
        labels.update(values)
        config["Labels"] = labels
        return "LABEL " + " ".join(f"{k}={v}" for k, v in values)
    if cmd == "USER":
        user = expand_word(instruction.args[0], env, escape)
        config["User"] = user
        return f"USER {user}"
    if cmd == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        added = []
        for word in instruction.args:
            for port in expand_words(word, env, escape):
                number, _, proto = port.partition("/")
                proto = (proto or "tcp").lower()
                if proto not in ("tcp", "udp", "sctp") or not _port_range(number):
                    raise instruction.error(f"invalid port: {port!r}")
                ports[f"{number}/{proto}"] = {}
                added.append(f"{number}/{proto}")
        config["ExposedPorts"] = ports
        return "EXPOSE " + " ".join(added)
    if cmd == "VOLUME":
        volumes = dict(config.get("Volumes") or {})
        paths = list(instruction.args) if instruction.json else [
            p for word in instruction.args for p in expand_words(word, env, escape)]
        for path in paths:
            if not path.strip():
                raise instruction.error("VOLUME specified can not be an empty string")
            volumes[path] = {}
        config["Volumes"] = volumes
        return "VOLUME " + json.dumps(paths)
    if cmd == "STOPSIGNAL":
        config["StopSignal"] = expand_word(instruction.args[0], env, escape)
        return f"STOPSIGNAL {config['StopSignal']}"
    if cmd == "CMD":
        config["Cmd"] = command_form(instruction, shell)
        return "CMD " + json.dumps(config["Cmd"])
    if cmd == "ENTRYPOINT":
        config["Entrypoint"] = command_form(instruction, shell) or None
        if base_cmd_from_image:
            config["Cmd"] = None  # an ENTRYPOINT resets a CMD inherited from the base
        return "ENTRYPOINT " + json.dumps(config["Entrypoint"])
    if cmd == "SHELL":
        config["Shell"] = list(instruction.args)
        return "SHELL " + json.dumps(config["Shell"])
    if cmd == "HEALTHCHECK":
        config["Healthcheck"] = healthcheck(instruction, shell)
        return "HEALTHCHECK " + json.dumps(config["Healthcheck"])
    if cmd == "ONBUILD":
        config["OnBuild"] = [*(config.get("OnBuild") or []), trigger_text(instruction)]
        return "ONBUILD " + trigger_text(instruction)
    if cmd == "MAINTAINER":
        return "MAINTAINER " + " ".join(instruction.args)
    raise instruction.error(f"{cmd} is not a metadata instruction")


def _port_range(text: str) -> bool:
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        return False
    return 0 < int(low) <= 65535 and (not high or int(low) <= int(high) <= 65535)
