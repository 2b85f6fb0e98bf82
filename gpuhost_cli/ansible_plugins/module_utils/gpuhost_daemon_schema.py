# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0
"""Every rule gpuhost holds about daemon.json keys, in one place.

The docker_daemon_config module runs these rules on the host against the merged file;
the docker_daemon role's preflight runs the same functions on the controller (through
the ``docker_daemon_settings_problems`` filter) against the settings of the inventory,
before any host changes. Key tables follow dockerd's reference ("Daemon configuration
file", "Configuration reload behavior") and Docker's live-restore documentation.
"""

from __future__ import annotations

import difflib
import ipaddress
from urllib.parse import urlsplit

from ansible.module_utils.gpuhost_daemon_json import show

# ---------------------------------------------------------------------------
# Key tables
# ---------------------------------------------------------------------------

BOOL_KEYS = frozenset((
    "live-restore", "debug", "experimental", "ipv6", "icc", "iptables", "ip6tables",
    "ip-forward", "ip-forward-no-drop", "ip-masq", "userland-proxy", "tls", "tlsverify",
    "init", "no-new-privileges", "selinux-enabled", "raw-logs", "allow-direct-routing",
))
STRING_LIST_KEYS = frozenset((
    "hosts", "insecure-registries", "labels", "dns", "dns-search", "dns-opts", "exec-opts",
    "storage-opts", "authorization-plugins", "allow-nondistributable-artifacts",
    "cdi-spec-dirs", "node-generic-resources", "registry-mirrors",
))
STRING_KEYS = frozenset((
    "data-root", "log-driver", "storage-driver", "log-level", "log-format", "cgroup-parent",
    "default-runtime", "exec-root", "pidfile", "group", "userns-remap", "tlscacert", "tlscert",
    "tlskey", "containerd", "containerd-namespace", "containerd-plugins-namespace", "bip",
    "bip6", "bridge", "fixed-cidr", "fixed-cidr-v6", "default-gateway", "default-gateway-v6",
    "default-shm-size", "default-cgroupns-mode", "default-ipc-mode", "init-path", "ip",
    "seccomp-profile", "userland-proxy-path", "metrics-addr", "swarm-default-advertise-addr",
    "api-cors-header", "firewall-backend", "host-gateway-ip",
))
INT_KEYS = frozenset((
    "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts",
    "shutdown-timeout", "mtu", "network-control-plane-mtu", "cpu-rt-period", "cpu-rt-runtime",
    "oom-score-adjust",
))
OBJECT_KEYS = frozenset((
    "log-opts", "runtimes", "features", "default-ulimits", "builder", "proxies",
    "default-network-opts", "cluster-store-opts",
))
# Keys some dockerd release reads that the tables above do not type-check.
OTHER_KEYS = frozenset((
    "default-address-pools", "host-gateway-ips", "cluster-store", "cluster-advertise",
    "graph", "disable-legacy-registry", "cri-containerd", "validate",
))
KNOWN_KEYS = BOOL_KEYS | STRING_LIST_KEYS | STRING_KEYS | INT_KEYS | OBJECT_KEYS | OTHER_KEYS

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2")

# Options dockerd applies on SIGHUP ("Configuration reload behavior"). "features" is
# listed there too, but several feature flags are only read at start-up, so it is
# treated as needing a restart.
RELOADABLE_KEYS = frozenset((
    "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "default-runtime", "runtimes", "authorization-plugins",
    "insecure-registries", "registry-mirrors", "allow-nondistributable-artifacts",
    "shutdown-timeout",
))

# Docker's live-restore documentation: containers are restored only "if the daemon
# options, such as bridge IP addresses and graph driver, did not change". A restart
# that changes one of these stops running containers even with live-restore on.
LIVE_RESTORE_UNSAFE_KEYS = frozenset((
    "bip", "bip6", "bridge", "fixed-cidr", "fixed-cidr-v6", "default-address-pools",
    "data-root", "graph", "storage-driver", "storage-opts", "exec-opts", "exec-root",
    "containerd", "containerd-namespace", "userns-remap",
))

# dockerd flag name (without dashes) -> daemon.json key paths it collides with.
# Flags not listed here map to the key of the same name.
FLAG_KEYS = {
    "H": (("hosts",),),
    "host": (("hosts",),),
    "D": (("debug",),),
    "l": (("log-level",),),
    "s": (("storage-driver",),),
    "g": (("data-root",), ("graph",)),
    "graph": (("data-root",), ("graph",)),
    "data-root": (("data-root",), ("graph",)),
    "G": (("group",),),
    "b": (("bridge",),),
    "p": (("pidfile",),),
    "registry-mirror": (("registry-mirrors",),),
    "insecure-registry": (("insecure-registries",),),
    "log-opt": (("log-opts",),),
    "add-runtime": (("runtimes",),),
    "exec-opt": (("exec-opts",),),
    "label": (("labels",),),
    "dns-opt": (("dns-opts",),),
    "storage-opt": (("storage-opts",),),
    "authorization-plugin": (("authorization-plugins",),),
    "default-ulimit": (("default-ulimits",),),
    "default-address-pool": (("default-address-pools",),),
    "node-generic-resource": (("node-generic-resources",),),
    "cluster-store-opt": (("cluster-store-opts",),),
    "cdi-spec-dir": (("cdi-spec-dirs",),),
    "feature": (("features",),),
    "http-proxy": (("proxies", "http-proxy"),),
    "https-proxy": (("proxies", "https-proxy"),),
    "no-proxy": (("proxies", "no-proxy"),),
}
# Flags that are not configuration options.
NON_CONFIG_FLAGS = frozenset(("config-file", "validate", "help", "version", "v", "h"))
# Short flags that take no value (further letters in the same token are flags).
SHORT_BOOL_FLAGS = frozenset(("D", "v", "h"))
# Long flags that take no separate value: "--tlsverify -H ..." never reads "-H" or a
# following word as the value of --tlsverify (only "--tlsverify=false" sets one).
LONG_BOOL_FLAGS = BOOL_KEYS | frozenset(("validate", "help", "version"))


def flag_keys(name: str) -> tuple:
    """daemon.json key paths an option flag collides with (empty for non-options)."""
    if name in NON_CONFIG_FLAGS:
        return ()
    if name in FLAG_KEYS:
        return FLAG_KEYS[name]
    if len(name) == 1:
        return ()
    return ((name,),)


def classify_reload(keys) -> bool:
    """True when every key is applied by a dockerd reload (SIGHUP); False for no keys."""
    keys = list(keys)
    return bool(keys) and all(key in RELOADABLE_KEYS for key in keys)


def live_restore_unsafe(keys) -> list[str]:
    """The keys whose change a restart does not survive even with live-restore on."""
    return sorted(set(keys) & LIVE_RESTORE_UNSAFE_KEYS)


# ---------------------------------------------------------------------------
# Single-value rules
# ---------------------------------------------------------------------------

MIRROR_EXPECTED = ('an https:// URL with a host and no user name, password, path, query or '
                   'fragment (e.g. "https://mirror.example.com")')


def mirror_problem(url) -> tuple[str, str] | None:
    """What is wrong with a registry mirror: ``None``, ``("http", why)`` or ``("invalid", why)``.

    dockerd accepts http and https mirrors without credentials, path, query or fragment;
    gpuhost also refuses white space and control characters, which would hide a second
    value in the file. An http mirror is valid but insecure.
    """
    if not isinstance(url, str):
        return "invalid", "not a string"
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "invalid", "it is empty or holds white space or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # raises ValueError on a port that is not a number from 0 to 65535
    except ValueError as exc:
        return "invalid", f"it is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return "invalid", "its scheme is not https"
    if "@" in parts.netloc:
        return "invalid", "it holds a user name or password (dockerd refuses them; use docker login)"
    if not host:
        return "invalid", "it has no host"
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in url or "#" in url:
        return "invalid", "it has a path, query or fragment (dockerd refuses them)"
    if scheme == "http":
        return "http", "it is plain http: images come without TLS"
    return None


def redact_url(url) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    if not isinstance(url, str) or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***{at}{host}"


def tcp_hosts(hosts) -> list[str]:
    """The ``hosts`` entries dockerd listens on over TCP.

    Every entry whose scheme is not ``unix://`` or ``fd://`` counts: dockerd reads an
    entry without a scheme (``0.0.0.0:2375``, ``:2375``) as tcp.
    """
    found = []
    for entry in hosts or []:
        if not isinstance(entry, str):
            continue
        scheme, sep, _rest = entry.strip().partition("://")
        if not (sep and scheme.lower() in ("unix", "fd")):
            found.append(entry)
    return found


def unknown_key_problem(key: str, extra_keys=()) -> str | None:
    """Why ``key`` is not a daemon.json key dockerd knows, with a suggestion; None if known."""
    if key in KNOWN_KEYS or key in set(extra_keys or ()):
        return None
    close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.75)
    if not close and key.lower() in KNOWN_KEYS:
        close = [key.lower()]
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"it is not a daemon.json key dockerd knows, and dockerd refuses to start with it.{hint}"


# ---------------------------------------------------------------------------
# The whole configuration
# ---------------------------------------------------------------------------

def _default_label(path: str) -> str:
    return f"'{path}'"


class _Findings:
    """Problems found, each tied to the top-level keys it involves."""

    def __init__(self, user_keys, label):
        self.user_keys = user_keys
        self.label = label
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def strict(self, keys) -> bool:
        return self.user_keys is None or bool(set(keys) & self.user_keys)

    def add(self, keys, text, warn_only=False):
        if warn_only:
            self.warnings.append(text)
        elif self.strict(keys):
            self.errors.append(text)
        else:
            self.warnings.append(text + " (kept as the host has it: gpuhost does not manage this key)")

    def bad(self, key, path, value, expected):
        self.add((key,), f"docker_daemon: invalid value for {self.label(path)}: got {show(value)}, "
                         f"expected {expected}")


def _string_list_ok(config, key, found) -> bool:
    value = config[key]
    if not isinstance(value, list):
        found.bad(key, key, value, "a list of strings")
        return False
    ok = True
    for index, item in enumerate(value):
        if not isinstance(item, str):
            found.bad(key, f"{key}[{index}]", item, "a string")
            ok = False
    return ok


def _check_types(config, found) -> dict:
    for key in sorted(BOOL_KEYS & set(config)):
        if not isinstance(config[key], bool):
            found.bad(key, key, config[key], "a JSON boolean (true or false, without quotes)")
    for key in sorted(INT_KEYS & set(config)):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool):
            found.bad(key, key, value, "an integer")
    for key in sorted(STRING_KEYS & set(config)):
        if not isinstance(config[key], str):
            found.bad(key, key, config[key], "a string")
    lists_ok = {key: _string_list_ok(config, key, found) for key in sorted(STRING_LIST_KEYS & set(config))}
    for key in sorted(OBJECT_KEYS & set(config)):
        if not isinstance(config[key], dict):
            found.bad(key, key, config[key], "an object")
    return lists_ok


def _check_values(config, lists_ok, found) -> None:
    level = config.get("log-level")
    if isinstance(level, str) and level not in LOG_LEVELS:
        found.bad("log-level", "log-level", level, "one of " + ", ".join(LOG_LEVELS))
    if lists_ok.get("labels"):
        for index, label in enumerate(config["labels"]):
            if "=" not in label:
                found.bad("labels", f"labels[{index}]", label, 'a "key=value" string')
    if lists_ok.get("dns"):
        for index, server in enumerate(config["dns"]):
            try:
                ipaddress.ip_address(server)
            except ValueError:
                found.bad("dns", f"dns[{index}]", server, "an IP address")
    opts = config.get("log-opts")
    if isinstance(opts, dict):
        for name, value in opts.items():
            if isinstance(value, str):
                continue
            expected = "a string"
            if isinstance(value, (bool, int, float)):
                expected += f"; dockerd accepts only strings in log-opts, quote it: {show(show(value))}"
            found.bad("log-opts", f"log-opts.{name}", value, expected)
    features = config.get("features")
    if isinstance(features, dict):
        for name, value in features.items():
            if not isinstance(value, bool):
                found.bad("features", f"features.{name}", value, "a JSON boolean")


def _check_runtimes(config, found) -> None:
    runtimes = config.get("runtimes")
    names = list(runtimes) if isinstance(runtimes, dict) else []
    for name in names:
        spec = runtimes[name]
        key = f"runtimes.{name}"
        if not isinstance(spec, dict):
            found.bad("runtimes", key, spec, 'an object with a "path"')
            continue
        path = spec.get("path")
        runtime_type = spec.get("runtimeType")
        if ("path" in spec or runtime_type is None) and (not isinstance(path, str) or not path.strip()):
            found.bad("runtimes", f"{key}.path", path,
                      'a non-empty string (a binary name such as "nvidia-container-runtime" or an absolute path)')
        if runtime_type is not None and (not isinstance(runtime_type, str) or not runtime_type):
            found.bad("runtimes", f"{key}.runtimeType", runtime_type, "a non-empty string")
        for list_key in ("runtimeArgs", "args"):
            if list_key in spec:
                args = spec[list_key]
                if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                    found.bad("runtimes", f"{key}.{list_key}", args, "a list of strings")
    default = config.get("default-runtime")
    if isinstance(default, str) and default not in names and default not in BUILTIN_RUNTIMES:
        known = ", ".join(sorted(set(names) | set(BUILTIN_RUNTIMES)))
        found.add(("default-runtime", "runtimes"),
                  f"docker_daemon: invalid value for {found.label('default-runtime')}: got {show(default)}, "
                  f'expected a runtime defined under "runtimes" or a built-in runtime ({known})')


def _check_mirrors(config, lists_ok, allow_insecure, found) -> None:
    if not lists_ok.get("registry-mirrors"):
        return
    for index, url in enumerate(config["registry-mirrors"]):
        problem = mirror_problem(url)
        if problem is None:
            continue
        kind, why = problem
        name = found.label(f"registry-mirrors[{index}]")
        url = redact_url(url)
        if kind == "invalid":
            found.bad("registry-mirrors", f"registry-mirrors[{index}]", url, f"{MIRROR_EXPECTED}; {why}")
        elif allow_insecure:
            found.add(("registry-mirrors",), f"docker_daemon: {name} is {show(url)}: {why} "
                      "(accepted because insecure settings are allowed).", warn_only=True)
        elif found.strict(("registry-mirrors",)):
            found.add(("registry-mirrors",), f"docker_daemon: {name} is {show(url)}: {why}. Use an https "
                      "mirror, or allow insecure settings (docker_daemon_allow_insecure: true) to accept it.")
        else:
            found.add(("registry-mirrors",), f"docker_daemon: {name} is {show(url)}: {why}.", warn_only=True)


def _check_exposure(config, lists_ok, allow_insecure, tls_verify_flag, found) -> None:
    registries = config.get("insecure-registries") if lists_ok.get("insecure-registries") else None
    if registries:
        text = (f"docker_daemon: {found.label('insecure-registries')} is {show(registries)}; images from "
                "these registries are pulled without TLS verification")
        if allow_insecure:
            found.add(("insecure-registries",), text + " (accepted because insecure settings are allowed).",
                      warn_only=True)
        else:
            found.add(("insecure-registries",), text + ". Remove the key, or allow insecure settings "
                      "(docker_daemon_allow_insecure: true) to accept this.")
    tcp = tcp_hosts(config["hosts"]) if lists_ok.get("hosts") else []
    if tcp and config.get("tlsverify") is not True and not tls_verify_flag:
        text = (f"docker_daemon: {found.label('hosts')} has {show(tcp)}, a TCP socket without tlsverify: "
                "anyone who can reach it gets root on this host")
        if allow_insecure:
            found.add(("hosts", "tlsverify"), text + " (accepted because insecure settings are allowed).",
                      warn_only=True)
        else:
            found.add(("hosts", "tlsverify"), text + ". Set tlsverify: true with tlscacert, tlscert and tlskey, "
                      "listen on unix:// or fd:// only, or allow insecure settings "
                      "(docker_daemon_allow_insecure: true) to accept this.")


def check_config(config: dict, user_keys=None, allow_insecure: bool = False, extra_keys=(),
                 tls_verify_flag: bool = False, label=None) -> tuple[list[str], list[str]]:
    """Judge a daemon.json configuration. Returns ``(errors, warnings)``.

    ``user_keys`` are the top-level keys gpuhost is asked to set: a problem that involves
    one of them is an error; a problem only in keys the host has is a warning (the key is
    kept). ``None`` judges every key strictly. Unknown key names are errors for user keys
    unless listed in ``extra_keys``, and are not reported for keys only the host has.
    ``tls_verify_flag`` tells that dockerd runs with ``--tlsverify`` in its unit.
    ``label(path)`` names a key path in messages.
    """
    found = _Findings(None if user_keys is None else set(user_keys), label or _default_label)
    for key in config if user_keys is None else [k for k in config if k in found.user_keys]:
        why = unknown_key_problem(key, extra_keys)
        if why:
            found.add((key,), f"docker_daemon: {found.label(key)}: {why} If this dockerd knows it, list it "
                      "in docker_daemon_extra_keys.")
    lists_ok = _check_types(config, found)
    _check_values(config, lists_ok, found)
    _check_runtimes(config, found)
    _check_mirrors(config, lists_ok, allow_insecure, found)
    _check_exposure(config, lists_ok, allow_insecure, tls_verify_flag, found)
    return found.errors, found.warnings
