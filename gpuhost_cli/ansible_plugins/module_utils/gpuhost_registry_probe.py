# -*- coding: utf-8 -*-
"""Whether a registry mirror answers as a registry, asked from the host the way Docker asks.

Docker sends ``GET <mirror>/v2/`` and takes an answer of 200 or 401 carrying the header
``Docker-Distribution-API-Version: registry/2.0`` as a registry. Anything else makes Docker
skip the mirror and pull from the upstream registry without saying so. The probe sorts each
mirror into one of:

``passed``
    the mirror answered as a registry (200, or 401: it wants credentials).
``dead``
    no answer: the name does not resolve, the connection is refused or reset, no answer in
    the timeout, or the proxy could not reach it (a 502, 503 or 504 from the proxy).
``not_registry``
    an HTTP answer that is not a registry's (such as a web or apt server's 404).
``tls``
    the TLS handshake failed: a certificate Docker does not trust, a name the certificate
    does not carry, or no TLS at all behind an https URL.

It trusts what Docker trusts: the system's CA certificates and every ``*.crt`` in
``<certs_dir>/<host[:port]>/`` (``/etc/docker/certs.d/mirror.example.com:5000/ca.crt``).
It goes through the proxy of the environment it runs in (``https_proxy``, ``http_proxy``,
``no_proxy``), as dockerd does with the proxy it was given. Used by the
registry_mirror_probe module on the host; it needs nothing beyond Python's standard library.
"""

from __future__ import annotations

import glob
import os
import socket
import ssl

try:
    import http.client as http_client
    from urllib import error as urllib_error
    from urllib import request as urllib_request
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 hosts are not supported
    raise

PASSED = "passed"
DEAD = "dead"
NOT_REGISTRY = "not_registry"
TLS = "tls"
OUTCOMES = (PASSED, DEAD, NOT_REGISTRY, TLS)

API_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
CERTS_DIR = "/etc/docker/certs.d"
# What a proxy answers when it could not reach the address it was asked for.
PROXY_GATEWAY_ERRORS = (502, 503, 504)


class MirrorURLError(ValueError):
    """A mirror that is not an http(s) URL with a host."""


def registry_host(url):
    """The ``host[:port]`` of a mirror URL, as Docker names its directory under certs.d."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MirrorURLError("%r is not an http:// or https:// URL with a host" % url)
    return parts.netloc.rsplit("@", 1)[-1]


def endpoint(url):
    """``<mirror>/v2/``, where Docker asks a mirror whether it is a registry."""
    registry_host(url)
    return url.strip().rstrip("/") + "/v2/"


def ca_files(url, certs_dir=CERTS_DIR):
    """The CA certificates Docker adds for this mirror's host: ``<certs_dir>/<host[:port]>/*.crt``."""
    return sorted(glob.glob(os.path.join(certs_dir, registry_host(url), "*.crt")))


def ssl_context(cafiles):
    """The system's trusted CAs plus ``cafiles``, hostnames checked (as Docker checks them)."""
    context = ssl.create_default_context()
    for path in cafiles:
        context.load_verify_locations(cafile=path)
    return context


def environment_proxies(environ):
    """{scheme: proxy, 'no': no_proxy} from ``*_proxy`` variables, the lower-case ones first, as
    urllib and dockerd read them."""
    proxies = {}
    for name, value in environ.items():
        key = name.lower()
        if value and key.endswith("_proxy") and (name == key or key[:-6] not in proxies):
            proxies[key[:-6]] = value
    return proxies


def proxy_for(url, environ=None):
    """The proxy the probe (and dockerd, given the same settings) uses for ``url``, or ''."""
    proxies = environment_proxies(os.environ if environ is None else environ)
    parts = urlsplit(url)
    if not proxies.get(parts.scheme):
        return ""
    if "no" in proxies and urllib_request.proxy_bypass_environment(parts.hostname or "", proxies):
        return ""
    return proxies[parts.scheme]


#: What ``docker info`` shows in place of a proxy's password.
MASKED_PASSWORD = "xxxxx"


def probe_environment(docker_info, http="", https="", no_proxy=()):
    """The ``*_proxy`` environment the probe runs in, to go where dockerd goes: dockerd's own
    proxy as ``docker info`` reports it (HTTPProxy, HTTPSProxy, NoProxy: its no-proxy list,
    which gpuhost extends with the internal mirrors), unless Docker runs without one or masks
    its password; then the inventory's ``http``, ``https`` (default: ``http``) and
    ``no_proxy`` (a list, or a comma-separated string). Empty values are left out."""
    info = docker_info if isinstance(docker_info, dict) else {}
    docker = {"http_proxy": info.get("HTTPProxy") or "", "https_proxy": info.get("HTTPSProxy") or "",
              "no_proxy": info.get("NoProxy") or ""}
    docker = dict((key, str(value)) for key, value in docker.items() if value)
    if (docker.get("http_proxy") or docker.get("https_proxy")) and not any(
            MASKED_PASSWORD in value for value in docker.values()):
        return docker
    entries = [no_proxy] if isinstance(no_proxy, str) else list(no_proxy or [])
    inventory = {"http_proxy": http or "", "https_proxy": https or http or "",
                 "no_proxy": ",".join(str(entry) for entry in entries if str(entry))}
    return dict((key, str(value)) for key, value in inventory.items() if value)


def _without_credentials(proxy):
    parts = urlsplit(proxy)
    if parts.username is None:
        return proxy
    return proxy.replace(parts.netloc, parts.netloc.rsplit("@", 1)[-1])


def _reason_text(reason):
    """A short, readable reason from what urllib or the socket raised."""
    if isinstance(reason, socket.gaierror):
        return "the name does not resolve (%s)" % (reason.strerror or reason)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _classify_exception(exc, timeout):
    """(outcome, reason) for an exception raised while asking the mirror."""
    reason = exc.reason if isinstance(exc, urllib_error.URLError) and not isinstance(exc, urllib_error.HTTPError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return TLS, "certificate not trusted: %s" % (reason.verify_message or reason.reason or reason)
    if isinstance(reason, ssl.CertificateError):
        return TLS, "certificate not trusted: %s" % reason
    if isinstance(reason, ssl.SSLError):
        return TLS, "TLS handshake failed: %s" % (reason.reason or reason)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return DEAD, "no answer in %s s" % timeout
    if isinstance(reason, http_client.HTTPException):
        return NOT_REGISTRY, "the answer is not HTTP (%s)" % type(reason).__name__
    if isinstance(reason, OSError) and "Tunnel connection failed" in str(reason):
        return DEAD, "the proxy could not reach it (%s)" % str(reason).strip()
    if isinstance(reason, OSError):
        return DEAD, _reason_text(reason)
    return DEAD, _reason_text(reason)


def classify_answer(status, headers, proxied=False):
    """(outcome, reason) for an HTTP answer to ``GET /v2/``: a registry answers 200 or 401 with
    ``Docker-Distribution-API-Version: registry/2.0``."""
    version = (headers.get(API_HEADER) or "").strip() if headers is not None else ""
    if status in (200, 401) and version.lower() == API_VERSION:
        return PASSED, "HTTP %d with %s: %s" % (status, API_HEADER, API_VERSION)
    if proxied and status in PROXY_GATEWAY_ERRORS:
        return DEAD, "the proxy could not reach it (HTTP %d from the proxy)" % status
    if version:
        return NOT_REGISTRY, "answered HTTP %d with %s: %s, not %s" % (status, API_HEADER, version, API_VERSION)
    return NOT_REGISTRY, "answered HTTP %d without %s: %s" % (status, API_HEADER, API_VERSION)


def probe(url, timeout=5.0, certs_dir=CERTS_DIR, environ=None):
    """Ask one mirror: {mirror, outcome, reason, endpoint, http_status, proxy, ca_files}.

    ``environ`` (default: this process's environment) supplies the proxy settings."""
    result = {"mirror": url, "outcome": DEAD, "reason": "", "endpoint": None, "http_status": None,
              "proxy": "", "ca_files": []}
    try:
        result["endpoint"] = endpoint(url)
        result["ca_files"] = ca_files(url, certs_dir) if urlsplit(url).scheme == "https" else []
    except MirrorURLError as exc:
        result.update(outcome=NOT_REGISTRY, reason=str(exc))
        return result
    proxy = proxy_for(result["endpoint"], environ)
    result["proxy"] = _without_credentials(proxy) if proxy else ""
    handlers = [urllib_request.ProxyHandler({urlsplit(url).scheme: proxy} if proxy else {})]
    try:
        handlers.append(urllib_request.HTTPSHandler(context=ssl_context(result["ca_files"])))
    except (ssl.SSLError, OSError) as exc:
        result.update(outcome=TLS, reason="cannot read the CA certificates %s: %s" % (
            ", ".join(result["ca_files"]), getattr(exc, "reason", None) or exc))
        return result
    opener = urllib_request.build_opener(*handlers)
    req = urllib_request.Request(result["endpoint"], headers={"User-Agent": "gpuhost-registry-probe"})
    try:
        with opener.open(req, timeout=timeout) as answer:
            status, headers = answer.status, answer.headers
    except urllib_error.HTTPError as exc:
        status, headers = exc.code, exc.headers
        exc.close()
    except (urllib_error.URLError, OSError, http_client.HTTPException, ValueError) as exc:
        result["outcome"], result["reason"] = _classify_exception(exc, timeout)
        return result
    result["http_status"] = status
    result["outcome"], result["reason"] = classify_answer(status, headers, proxied=bool(proxy))
    return result


FIXES = {
    DEAD: "Docker skips it and pulls from the upstream registry; start the mirror, or remove it "
          "from docker_daemon_registry_mirrors",
    NOT_REGISTRY: "Docker skips it and pulls from the upstream registry; give the URL of a registry "
                  "(its /v2/ answers with Docker-Distribution-API-Version: registry/2.0)",
    TLS: "Docker skips it and pulls from the upstream registry; install the mirror's CA with "
         "docker_daemon_registry_ca_certs, or fix its certificate",
}
WORDS = {PASSED: "answers as a registry", DEAD: "is dead", NOT_REGISTRY: "is not a registry", TLS: "fails TLS"}


def detail(result):
    """One line for a person: the mirror, what it did, through which proxy, and the fix."""
    text = "%s %s: %s" % (result["mirror"], WORDS[result["outcome"]], result["reason"])
    if result.get("proxy"):
        text += " (through the proxy %s)" % result["proxy"]
    if result["outcome"] == PASSED and result.get("ca_files"):
        text += "; trusted with %s" % ", ".join(result["ca_files"])
    if result["outcome"] in FIXES:
        text += ". " + FIXES[result["outcome"]]
    return text


def check_name(mirror):
    """The verify check's name for a mirror."""
    return "registry mirror %s" % mirror


def check_status(outcome, required=False):
    """The verify check's status for a probe outcome: passed, or warning (failed when the
    mirrors are required)."""
    if outcome == PASSED:
        return "passed"
    return "failed" if required else "warning"
