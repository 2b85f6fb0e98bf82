# -*- coding: utf-8 -*-
"""The rules for docker_daemon_registry_ca_certs: CA certificates Docker trusts for one registry.

Docker reads ``/etc/docker/certs.d/<host[:port]>/*.crt`` as the CAs of the registry (or mirror)
at ``host[:port]``, on every connection, so a new file needs no restart or reload. Each entry
is ``{registry: "host:port", cert: "<PEM text>"}``; the port is left out for 443, as Docker
names the directory after the registry's address exactly as it appears in image names and
mirror URLs. Checked on the controller (the role's preflight, through a filter) before any
host changes; the registry_mirror_probe module reads the same directory on the host.
"""

from __future__ import annotations

import re
import ssl

CERTS_DIR = "/etc/docker/certs.d"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(r"^(?:%s)(?:\.%s)*$" % (_LABEL, _LABEL))
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
PEM_CERT = "-----BEGIN CERTIFICATE-----"
EXAMPLE = ("docker_daemon_registry_ca_certs: [{registry: \"mirror.example.com:5000\", "
           "cert: \"{{ lookup('file', 'files/mirror-ca.crt') }}\"}]")


def registry_problem(registry):
    """Why ``registry`` is not a ``host[:port]`` Docker names a certs.d directory by, or ''."""
    if not isinstance(registry, str) or not registry.strip():
        return "is empty; give the registry as host:port (or host for port 443)"
    text = registry
    if "://" in text or "/" in text:
        return ("is %r; give the registry as host:port, as in docker pull host:port/image, "
                "without https:// or a path" % registry)
    host, port = text, None
    if text.startswith("["):
        host, _bracket, rest = text.partition("]")
        host += "]"
        if rest:
            if not rest.startswith(":"):
                return "is %r; give an IPv6 registry as [address]:port" % registry
            port = rest[1:]
        if not _IPV6.match(host):
            return "is %r; give an IPv6 registry as [address]:port" % registry
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" in text:
        return "is %r; write an IPv6 address in brackets, [address]:port" % registry
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        return "is %r; the port must be a number from 1 to 65535" % registry
    if not host.startswith("[") and not _HOST.match(host):
        return "is %r; %r is not a host name or IPv4 address" % (registry, host)
    return ""


def cert_problem(cert):
    """Why ``cert`` is not PEM text of one or more CA certificates, or ''."""
    if not isinstance(cert, str) or PEM_CERT not in cert:
        return ("holds no PEM certificate (%s ... -----END CERTIFICATE-----); give the CA's certificate "
                "text, e.g. cert: \"{{ lookup('file', 'files/mirror-ca.crt') }}\"" % PEM_CERT)
    if "PRIVATE KEY" in cert:
        return "holds a private key; give only the CA's certificate, never a key"
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=cert)
    except (ssl.SSLError, ValueError) as exc:
        return "is not a certificate OpenSSL can read (%s); give the CA's PEM certificate" % (
            getattr(exc, "reason", None) or exc)
    return ""


def ca_cert_problems(entries, variable="docker_daemon_registry_ca_certs"):
    """Every problem of the list, each naming the entry, the bad value and the fix."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        return ["%s must be a list of {registry, cert}; e.g. %s" % (variable, EXAMPLE)]
    problems, seen = [], {}
    for index, entry in enumerate(entries):
        where = "%s[%d]" % (variable, index)
        if not isinstance(entry, dict):
            problems.append("%s is %r; each entry is {registry: host:port, cert: PEM text}" % (where, entry))
            continue
        unknown = sorted(set(entry) - {"registry", "cert"})
        if unknown:
            problems.append("%s has unknown keys %s; each entry has registry and cert only" % (where, ", ".join(unknown)))
        problem = registry_problem(entry.get("registry"))
        if problem:
            problems.append("%s.registry %s." % (where, problem))
        elif entry["registry"] in seen:
            problems.append("%s.registry %s is also %s[%d].registry; give each registry once (one ca.crt each; "
                            "put several CAs in one cert text)" % (where, entry["registry"], variable, seen[entry["registry"]]))
        else:
            seen[entry["registry"]] = index
        problem = cert_problem(entry.get("cert"))
        if problem:
            problems.append("%s.cert %s." % (where, problem))
    return problems


def ca_cert_path(registry, certs_dir=CERTS_DIR):
    return "%s/%s/ca.crt" % (certs_dir.rstrip("/"), registry)
