# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0
"""Hosts behind an HTTP proxy: one rule for each question, used on the controller (filter
gpuhost_proxy) and on the host (module gpuhost_proxy_settings).

* :func:`no_proxy_list` - what bypasses the proxy: localhost, the host's own names, the
  registry mirrors whose hosts are internal (:func:`is_internal_host`), and what the user adds.
* :func:`docker_proxy_method` - where dockerd takes its proxy: daemon.json ``proxies``
  (Docker 23.0 and later) or a systemd drop-in (older engines), never both.
* :func:`apt_conf_text` / :func:`dropin_text` - the files gpuhost writes.
* :func:`apt_proxy_settings` / :func:`unit_proxy_settings` / :func:`judge` - a host's own
  proxy settings, found in other files, and whether they agree with what gpuhost is asked for.
* :func:`redact_url` / :func:`redact_text` - credentials never leave in a message or a diff.
"""

from __future__ import annotations

import ipaddress
import re

#: Always bypass the proxy.
LOCAL_NO_PROXY = ("localhost", "127.0.0.1", "::1")
#: Name suffixes that are internal by convention (RFC 6762 .local, RFC 8375 .home.arpa,
#: ICANN's reserved .internal, and the common .lan and .localdomain).
INTERNAL_SUFFIXES = (".local", ".internal", ".lan", ".home.arpa", ".localdomain")
#: The first engine whose daemon.json takes a "proxies" key.
DAEMON_JSON_PROXIES_SINCE = (23, 0)

DAEMON_JSON = "daemon-json"
DROP_IN = "drop-in"
UNKNOWN = "unknown"

#: apt's generic proxy settings (a per-host Acquire::http::Proxy::HOST is not one).
APT_SCHEMES = ("http", "https")
#: The environment variables dockerd reads, by what they set.
ENV_NAMES = {"http": ("HTTP_PROXY", "http_proxy"), "https": ("HTTPS_PROXY", "https_proxy"),
             "no_proxy": ("NO_PROXY", "no_proxy")}

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s\"']*):(?P<secret>[^@/\s\"']+)@")


def redact_url(url):
    """``url`` with its password replaced by ``***`` (``http://user:***@proxy:3128``)."""
    if not isinstance(url, str):
        return url
    return redact_text(url)


def redact_text(text):
    """Every ``scheme://user:password@`` in ``text`` with the password replaced by ``***``."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)


def redact_data(value):
    """A copy of a JSON-like value with every string redacted by :func:`redact_text`."""
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    return redact_text(value)


def url_host(url):
    """The host of a URL (``https://mirror.lan:5000/x`` -> ``mirror.lan``), or of a bare ``host[:port]``."""
    if not isinstance(url, str) or not url.strip():
        return ""
    rest = url.strip().split("://", 1)[-1]
    rest = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0].lower()
    if rest.count(":") > 1:  # a bare IPv6 address
        return rest.lower()
    return rest.split(":", 1)[0].lower()


def is_internal_host(host, internal_domains=()):
    """Whether ``host`` is on the hosts' own network, so it must not go through the proxy.

    Internal: an IP address in a private, loopback, link-local or unique-local range; a
    single-label name (``registry``); a name under .local, .internal, .lan, .home.arpa or
    .localdomain; a name under one of ``internal_domains`` (``example.com`` or
    ``.example.com`` both cover ``mirror.example.com``).
    """
    host = (host or "").strip().lower().rstrip(".")
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return address.is_private or address.is_loopback or address.is_link_local
    if "." not in host:
        return True
    if any(host.endswith(suffix) for suffix in INTERNAL_SUFFIXES):
        return True
    for domain in internal_domains or ():
        domain = str(domain).strip().lower().lstrip("*").lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _domains(entries):
    """The domain entries of a no_proxy list (``.corp.example``, ``*.corp.example``)."""
    return [entry for entry in entries if entry.startswith(".") or entry.startswith("*.")]


def no_proxy_list(user_entries=(), hostname="", fqdn="", mirrors=()):
    """The no_proxy entries, in order and without repeats: localhost, 127.0.0.1, ::1, the
    host's name and FQDN, the hosts of the internal registry ``mirrors`` (a domain the user
    lists in ``user_entries`` makes its mirrors internal), then ``user_entries``."""
    user = []
    for entry in user_entries or ():
        for part in str(entry).split(","):
            if part.strip():
                user.append(part.strip())
    found = list(LOCAL_NO_PROXY)
    for name in (hostname, fqdn):
        if name and str(name).strip():
            found.append(str(name).strip().lower())
    for mirror in mirrors or ():
        host = url_host(mirror)
        if host and is_internal_host(host, _domains(user)):
            found.append(host)
    found.extend(user)
    out = []
    for entry in found:
        if entry not in out:
            out.append(entry)
    return out


def parse_version(version):
    """``(major, minor)`` of an engine version (``26.1.5+dfsg1``, ``20.10.24``), or None."""
    match = re.match(r"\s*v?(\d+)\.(\d+)", str(version or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def dockerd_version(text):
    """The version from ``dockerd --version`` (``Docker version 20.10.24+dfsg1, build ...``)."""
    match = re.search(r"version\s+v?(\d+\.\d+[^\s,]*)", str(text or ""), re.IGNORECASE)
    return match.group(1) if match else ""


def docker_proxy_method(version):
    """Where the running or installed dockerd takes its proxy: daemon-json (23.0 and
    later: the "proxies" key), drop-in (older: HTTP_PROXY in a systemd drop-in), or
    unknown (no engine to ask)."""
    parsed = parse_version(version)
    if parsed is None:
        return UNKNOWN
    return DAEMON_JSON if parsed >= DAEMON_JSON_PROXIES_SINCE else DROP_IN


def wanted_settings(http="", https="", no_proxy=()):
    """``{scheme: value}`` of what gpuhost is asked to set; empty when no proxy is set."""
    if not (http or https):
        return {}
    out = {}
    if http:
        out["http"] = http
    if https:
        out["https"] = https
    out["no_proxy"] = ",".join(no_proxy)
    return out


def daemon_json_proxies(http="", https="", no_proxy=()):
    """The daemon.json ``proxies`` value (Docker 23.0 and later)."""
    proxies = {}
    if http:
        proxies["http-proxy"] = http
    if https:
        proxies["https-proxy"] = https
    if no_proxy:
        proxies["no-proxy"] = ",".join(no_proxy)
    return proxies


def _quote(value):
    return value.replace("\\", "\\\\").replace('"', '\\"')


def dropin_text(http="", https="", no_proxy=(), header=""):
    """The systemd drop-in for docker.service on engines older than 23.0."""
    lines = [header.rstrip("\n")] if header else []
    lines.append("[Service]")
    for name, value in (("HTTP_PROXY", http), ("HTTPS_PROXY", https), ("NO_PROXY", ",".join(no_proxy))):
        if value:
            # systemd expands %-specifiers in Environment=: a literal % is written %%.
            lines.append(f'Environment="{name}={_quote(value).replace("%", "%%")}"')
    return "\n".join(lines) + "\n"


def apt_conf_text(http="", https="", no_proxy=(), skip=(), header=""):
    """apt's proxy settings: the generic proxy per scheme (except the schemes in ``skip``,
    which another file already sets alike), and DIRECT for each plain host name of no_proxy
    (apt has no domain or address-range exceptions). Empty when there is nothing to set."""
    lines = []
    for scheme, value in (("http", http), ("https", https)):
        if value and scheme not in skip:
            lines.append(f'Acquire::{scheme}::Proxy "{_quote(value)}";')
    if not lines:
        return ""
    for entry in no_proxy:
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", entry) and not entry.startswith("."):
            for scheme, value in (("http", http), ("https", https)):
                if value and scheme not in skip:
                    lines.append(f'Acquire::{scheme}::Proxy::{entry} "DIRECT";')
    return "\n".join(([header.rstrip("\n")] if header else []) + lines) + "\n"


# ---- A host's own settings ---------------------------------------------------------------

_APT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"]+')


def _strip_apt_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    kept = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        # // starts a comment outside a quoted value.
        out, quoted = [], False
        for index, char in enumerate(line):
            if char == '"':
                quoted = not quoted
            if not quoted and line.startswith("//", index):
                break
            out.append(char)
        kept.append("".join(out))
    return "\n".join(kept)


def parse_apt_conf(text):
    """``[(full key, value), ...]`` of an apt configuration file, both syntaxes
    (``Acquire::http::Proxy "x";`` and ``Acquire { http { Proxy "x"; }; };``)."""
    tokens = _APT_TOKEN.findall(_strip_apt_comments(text or ""))
    found, scope, pending = [], [], []
    for token in tokens:
        if token == "{":
            scope.append("::".join(pending) if pending else "")
            pending = []
        elif token == "}":
            if scope:
                scope.pop()
            pending = []
        elif token == ";":
            pending = []
        elif token.startswith('"'):
            key = "::".join([part for part in scope if part] + pending)
            found.append((key, token[1:-1].replace('\\"', '"')))
            pending = []
        else:
            pending.append(token.strip(":"))
    return found


def apt_proxy_settings(files):
    """Generic proxy settings in apt configuration files: ``[{file, scheme, value}]``.

    ``files`` is ``[(path, text), ...]``. Only ``Acquire::http::Proxy`` and
    ``Acquire::https::Proxy`` count; a per-host ``Acquire::http::Proxy::HOST`` line (such as
    an archive cache for one host) does not, and neither does DIRECT or an empty value."""
    found = []
    for path, text in files:
        for key, value in parse_apt_conf(text):
            parts = key.lower().split("::")
            if (len(parts) == 3 and parts[0] == "acquire" and parts[1] in APT_SCHEMES and parts[2] == "proxy"
                    and value.strip() and value.strip().upper() != "DIRECT"):
                found.append({"file": path, "scheme": parts[1], "value": value.strip()})
    return found


def unit_proxy_settings(environment):
    """Proxy variables of the docker service's environment: ``[{file, scheme, value}]``.

    ``environment`` maps variable names to ``(value, file)`` as
    ``gpuhost_systemd_unit.effective_service`` returns it."""
    found = []
    for scheme, names in ENV_NAMES.items():
        for name in names:
            if name in environment and environment[name][0]:
                value, path = environment[name]
                found.append({"file": path, "scheme": scheme, "value": value, "variable": name})
                break
    return found


def judge(found, wanted, where, variables):
    """Compare a host's own proxy settings with what gpuhost is asked to set.

    ``found`` as :func:`apt_proxy_settings` returns it; ``wanted`` as :func:`wanted_settings`;
    ``where`` names the place (apt, Docker); ``variables`` maps a scheme to the variable that
    sets it. Returns ``{errors, warnings, skip}``: a setting that agrees is reported and gpuhost
    writes no second copy of it (its scheme is in ``skip``); one that differs is an error;
    one gpuhost is not asked for is reported."""
    errors, warnings, skip = [], [], []
    for item in found:
        scheme, value, path = item["scheme"], item["value"], item["file"]
        shown = redact_url(value)
        name = item.get("variable") or f"Acquire::{scheme}::Proxy"
        if not wanted:
            continue
        if scheme == "no_proxy":
            # One list only: the host's own wins, and gpuhost writes none beside it.
            if scheme not in skip:
                skip.append(scheme)
            if value != wanted.get("no_proxy"):
                warnings.append(f"{where}: {path} sets {name}={shown}; gpuhost leaves it and writes no second "
                                f"list, so {variables.get(scheme)} and the internal registry mirrors do not apply "
                                f"there. Merge the lists in {path}, or remove it there")
            continue
        if scheme not in wanted:
            warnings.append(f"{where}: {path} sets {name} to {shown}; gpuhost leaves it as it is "
                            f"({variables.get(scheme)} is not set)")
            continue
        if value == wanted[scheme]:
            warnings.append(f"{where}: {path} already sets {name} to {shown}, as "
                            f"{variables.get(scheme)} asks; gpuhost leaves it there and writes no second copy")
            if scheme not in skip:
                skip.append(scheme)
        else:
            errors.append(f"{where}: {path} sets {name} to {shown}, but {variables.get(scheme)} is "
                          f"{redact_url(wanted[scheme])}. Remove that setting from {path}, or set "
                          f"{variables.get(scheme)} to the same value (or leave it empty to keep the host's)")
    return {"errors": errors, "warnings": warnings, "skip": skip}


# ---- Input checks -------------------------------------------------------------------------

_URL = re.compile(r"(?P<scheme>https?)://(?:(?P<userinfo>[^@/\s]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
                  r"(?::(?P<port>\d{1,5}))?/?")


def url_problem(value, name):
    """Why ``value`` is not a proxy URL for ``name`` (the variable), or "" when it is one."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        return f"{name} must be a string (a URL such as http://proxy.example.com:3128), got {type(value).__name__}"
    # Whatever the URL holds before its last @ past the user name is hidden, even unusual text.
    head, at, tail = value.rpartition("@")
    shown = (head.split(":", 2)[0] + ":" + head.split(":", 2)[1] + ":***@" + tail
             if at and head.count(":") >= 2 else redact_url(value))
    if any(ch.isspace() or ch in "\"'\\;{}" for ch in value):
        return (f"{name} is {shown!r}: white space, quotes, backslashes, semicolons and braces are not "
                "allowed (percent-encode them in a password); write it as http://[user:password@]host:port")
    match = _URL.fullmatch(value)
    if not match:
        return (f"{name} is {shown!r}; expected http://[user:password@]host:port (apt and Docker need the "
                "scheme; https:// for a proxy that speaks TLS itself)")
    if match.group("port") and not 0 < int(match.group("port")) < 65536:
        return f"{name} is {shown!r}: the port must be 1 to 65535"
    return ""


def no_proxy_problems(entries, name):
    """Why entries of a no_proxy list are not usable, one message each."""
    if isinstance(entries, str):
        entries = entries.split(",")
    if not isinstance(entries, (list, tuple)):
        return [f"{name} must be a list of host names, domains (.example.com) or addresses, got "
                f"{type(entries).__name__}"]
    problems = []
    for entry in entries:
        if not isinstance(entry, str) or not re.fullmatch(r"[A-Za-z0-9*.:/\[\]_-]+", entry.strip() or "!"):
            problems.append(f"{name} holds {entry!r}: each entry is a host name, a domain (.example.com), an "
                            "address or a CIDR range, without spaces, quotes or commas")
    return problems
