# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0
"""The docker service as systemd runs it: ExecStart lines, environment and dockerd flags.

dockerd refuses to start when an option is given both as a flag and in daemon.json;
:func:`find_conflicts` finds those before a file is written.
"""

from __future__ import annotations

import os
import shlex

from ansible.module_utils.gpuhost_daemon_json import DaemonConfigError
from ansible.module_utils.gpuhost_daemon_schema import LONG_BOOL_FLAGS, SHORT_BOOL_FLAGS, flag_keys

DEFAULT_UNIT_PATHS = (
    "/lib/systemd/system/docker.service",
    "/usr/lib/systemd/system/docker.service",
    "/etc/systemd/system/docker.service",
    "/etc/systemd/system/docker.service.d",
    "/run/systemd/system/docker.service.d",
)

EXEC_PREFIX_CHARS = "@-:+!"
SHELLS = ("sh", "bash", "dash", "ash", "zsh")
SERVICE_DIRECTIVES = ("ExecStart", "Environment", "EnvironmentFile")


def _logical_lines(text: str) -> list[str]:
    """Lines of a unit file with backslash continuations joined and comments dropped."""
    logical = []
    pending = None
    for raw in text.splitlines():
        line = raw.strip()
        if pending is not None:
            if line.startswith(("#", ";")):
                continue
            pending += " " + line
        else:
            if not line or line.startswith(("#", ";")):
                continue
            pending = line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        logical.append(pending)
        pending = None
    if pending is not None:
        logical.append(pending)
    return logical


def service_directives(text: str) -> list[tuple[str, str]]:
    """``[(key, value), ...]`` for ExecStart, Environment and EnvironmentFile of [Service]."""
    directives = []
    section = None
    for line in _logical_lines(text):
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section != "Service" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key in SERVICE_DIRECTIVES:
            directives.append((key, value.strip()))
    return directives


def unit_files(unit_paths) -> list[str]:
    """Files that make up the unit, in the order systemd applies them."""
    main_unit = None
    dropins: dict[str, str] = {}
    for path in unit_paths:
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError:
                continue
            for name in names:
                full = os.path.join(path, name)
                if name.endswith(".conf") and name not in dropins and os.path.isfile(full):
                    dropins[name] = full
        elif os.path.isfile(path):
            if path.endswith(".conf"):
                dropins.setdefault(os.path.basename(path), path)
            else:
                main_unit = path
    files = [main_unit] if main_unit else []
    files.extend(dropins[name] for name in sorted(dropins))
    return files


def _is_var_name(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c == "_" for c in name)


def split_command(command: str) -> list[str]:
    try:
        return shlex.split(command, posix=True)
    except ValueError:
        return command.split()


def parse_assignments(text: str) -> dict[str, str]:
    """``{name: value}`` from an ``Environment=`` value (``A=1 "B=two words"``)."""
    result = {}
    for word in split_command(text):
        name, sep, value = word.partition("=")
        if sep and _is_var_name(name):
            result[name] = value
    return result


def read_environment_file(path: str) -> dict[str, str]:
    """``{name: value}`` from a systemd EnvironmentFile (shell-style ``export`` tolerated)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return {}
    result = {}
    for line in _logical_lines(text):
        if line.startswith("export "):
            line = line[len("export "):].strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _is_var_name(name):
            continue
        try:
            value = " ".join(shlex.split(value, comments=True))
        except ValueError:
            value = value.strip()
        result[name] = value
    return result


def effective_service(unit_paths) -> tuple[list[tuple[str, str]], dict[str, tuple[str, str]]]:
    """What systemd would use: ``(commands, environment)``.

    ``commands`` is ``[(file, command line), ...]`` of the effective ExecStart lines (an
    empty ``ExecStart=`` resets them); ``environment`` maps variable names to ``(value,
    file it came from)`` (``Environment=`` first, then ``EnvironmentFile=`` files, which win).
    """
    commands: list[tuple[str, str]] = []
    assignments: list[tuple[str, str]] = []
    env_files: list[str] = []
    for path in unit_files(unit_paths):
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        for key, value in service_directives(text):
            if key == "ExecStart":
                commands = commands + [(path, value)] if value else []
            elif key == "Environment":
                assignments = assignments + [(path, value)] if value else []
            elif key == "EnvironmentFile":
                env_files = env_files + [value.lstrip("-")] if value else []
    environment = {}
    for path, value in assignments:
        for name, var_value in parse_assignments(value).items():
            environment[name] = (var_value, path)
    for env_file in env_files:
        for name, var_value in read_environment_file(env_file).items():
            environment[name] = (var_value, env_file)
    return commands, environment


def referenced_variables(command: str) -> list[str]:
    """Names of ``$NAME`` and ``${NAME}`` references in a command line, in order."""
    names: list[str] = []
    index = 0
    while True:
        index = command.find("$", index)
        if index < 0 or index + 1 >= len(command):
            return names
        index += 1
        if command[index] == "{":
            close = command.find("}", index)
            name = command[index + 1:close] if close > 0 else ""
        else:
            end = index
            while end < len(command) and (command[end].isalnum() or command[end] == "_"):
                end += 1
            name = command[index:end]
        if _is_var_name(name) and name not in names:
            names.append(name)


def _dockerd_args(tokens: list[str], depth: int = 0) -> list[str] | None:
    for index, token in enumerate(tokens):
        base = os.path.basename(token)
        if base == "dockerd":
            return tokens[index + 1:]
        # A shell running a script: "sh -c 'exec dockerd ...'" (also "bash -ec").
        if base in SHELLS and depth < 3:
            for position in range(index + 1, len(tokens) - 1):
                option = tokens[position]
                if option.startswith("-") and not option.startswith("--") and "c" in option[1:]:
                    script = tokens[position + 1].replace(";", " ; ").replace("&&", " && ")
                    return _dockerd_args(split_command(script), depth + 1)
            return None
    return None


def dockerd_flags(command: str):
    """Flags given to dockerd in an ExecStart command line.

    Returns ``[(flag as written, name, value or None), ...]`` or ``None`` when the command
    does not run dockerd, directly or through ``sh -c``.
    """
    tokens = split_command(command)
    if not tokens:
        return None
    first = tokens[0].lstrip(EXEC_PREFIX_CHARS)
    prefix = tokens[0][:len(tokens[0]) - len(first)]
    tokens = [first] + tokens[1:]
    if "@" in prefix and len(tokens) > 1:
        del tokens[1]  # the argv[0] override
    args = _dockerd_args(tokens)
    if args is None:
        return None
    for stop in (";", "&&", "||", "|"):
        if stop in args:
            args = args[:args.index(stop)]
    return parse_flags(args)


def parse_flags(args: list[str]) -> list[tuple[str, str, str | None]]:
    """``[(flag as written, name, value or None), ...]`` from dockerd arguments."""
    flags = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == "--":
            break
        nxt = args[index] if index < len(args) and not args[index].startswith("-") else None
        if token.startswith("--"):
            name, sep, value = token[2:].partition("=")
            if not sep:
                value = None
                if name not in LONG_BOOL_FLAGS and nxt is not None:
                    value = nxt
                    index += 1
            if name:
                flags.append(("--" + name, name, value))
        elif token.startswith("-") and len(token) > 1:
            pos = 1
            while pos < len(token):
                letter = token[pos]
                if letter in SHORT_BOOL_FLAGS:
                    flags.append(("-" + letter, letter, None))
                    pos += 1
                    continue
                rest = token[pos + 1:]
                if rest.startswith("="):
                    value = rest[1:]
                elif rest:
                    value = rest
                else:
                    value = nxt
                    if nxt is not None:
                        index += 1
                flags.append(("-" + letter, letter, value))
                break
    return flags


def _has_key_path(config: dict, key_path) -> bool:
    node = config
    for part in key_path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _conflict_message(key, flag, where, via, reload_units) -> str:
    location = f"{where} ({via})" if via else where
    remedy = " (then systemctl daemon-reload)" if reload_units else ""
    return (f"docker_daemon: '{key}' is set in daemon.json and as flag '{flag}' in {location}; dockerd "
            f"refuses to start when an option is given both ways. Remove the flag from {where}{remedy} "
            "or drop the key.")


def service_flags(unit_paths) -> list[tuple[str, str, str | None, str, str | None]]:
    """Every dockerd flag of the effective service: ``(written, name, value, file, via)``.

    ``via`` is ``$NAME`` for flags that come from a variable of the unit's environment.
    """
    found = []
    commands, environment = effective_service(unit_paths)
    for unit_file, command in commands:
        flags = dockerd_flags(command)
        if flags is None:
            continue
        found.extend((written, name, value, unit_file, None) for written, name, value in flags)
        for name in referenced_variables(command):
            if name in environment:
                value, origin = environment[name]
                found.extend((written, flag, flag_value, origin, "$" + name)
                             for written, flag, flag_value in parse_flags(split_command(value)))
    return found


def tls_verify_flag(flags) -> bool:
    """Whether the flags switch on ``--tlsverify`` (``--tlsverify=false`` does not)."""
    on = False
    for _written, name, value, _where, _via in flags:
        if name == "tlsverify":
            on = value is None or value.lower() in ("1", "t", "true")
    return on


def find_conflicts(config: dict, flags) -> list[dict]:
    """Keys of ``config`` that the service also passes to dockerd as ``flags``."""
    conflicts = []
    seen = set()
    for written, name, _value, where, via in flags:
        for key_path in flag_keys(name):
            if not _has_key_path(config, key_path):
                continue
            key = ".".join(key_path)
            if (key, written, where) in seen:
                continue
            seen.add((key, written, where))
            conflicts.append({
                "key": key,
                "flag": written,
                "unit_file": where,
                "message": _conflict_message(key, written, where, via, not via or where.endswith((".service", ".conf"))),
            })
    return conflicts


def check_conflicts(config: dict, flags, path: str) -> list[str]:
    """Raise on flag/key conflicts; return warnings about the unit."""
    conflicts = find_conflicts(config, flags)
    if conflicts:
        raise DaemonConfigError(
            "\n".join(c["message"] for c in conflicts),
            conflicts=[{k: c[k] for k in ("key", "flag", "unit_file")} for c in conflicts])
    warnings = []
    wanted = os.path.realpath(path)
    for _written, name, value, where, _via in flags:
        if name == "config-file" and value and os.path.realpath(value) != wanted:
            warnings.append(f"docker_daemon: {where} starts dockerd with --config-file {value}, so changes "
                            f"to {path} do not take effect.")
    return warnings
