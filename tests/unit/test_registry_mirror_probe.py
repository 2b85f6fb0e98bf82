"""registry_mirror_probe: each mirror asked over real sockets on loopback, and sorted the way
Docker would take it: a registry, dead, not a registry, or a TLS failure."""

from __future__ import annotations

import pytest
from plugin_loader import load_module
from registry_servers import REGISTRY_HEADERS, LabCA, closed_port, serve, silent_listener

probe_module = load_module("registry_mirror_probe")

from ansible.module_utils import gpuhost_registry_probe as rp  # noqa: E402  (after load_module)

NO_PROXY = {}


@pytest.fixture(scope="module")
def ca():
    return LabCA()


def install_ca(certs_dir, host, pem):
    directory = certs_dir / host
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_text(pem, encoding="utf-8")
    return directory / "ca.crt"


def test_a_registry_behind_a_lab_ca_passes_with_the_ca_in_certs_d(tmp_path, ca):
    tls = ca.server(tmp_path / "server")
    with serve(401, REGISTRY_HEADERS, tls=tls) as port:
        ca_file = install_ca(tmp_path / "certs.d", f"localhost:{port}", ca.pem)
        result = rp.probe(f"https://localhost:{port}/", timeout=5, certs_dir=str(tmp_path / "certs.d"),
                          environ=NO_PROXY)
    assert result["outcome"] == rp.PASSED, result
    assert result["http_status"] == 401
    assert result["ca_files"] == [str(ca_file)]
    assert result["endpoint"] == f"https://localhost:{port}/v2/"
    assert rp.detail(result) == (f"https://localhost:{port}/ answers as a registry: HTTP 401 with "
                                 f"Docker-Distribution-API-Version: registry/2.0; trusted with {ca_file}")


def test_the_same_registry_without_its_ca_is_a_tls_failure(tmp_path, ca):
    tls = ca.server(tmp_path / "server")
    with serve(401, REGISTRY_HEADERS, tls=tls) as port:
        # The CA sits under another registry's directory: Docker would not use it for this one.
        install_ca(tmp_path / "certs.d", "localhost:1", ca.pem)
        result = rp.probe(f"https://localhost:{port}", certs_dir=str(tmp_path / "certs.d"), environ=NO_PROXY)
    assert result["outcome"] == rp.TLS, result
    assert result["ca_files"] == []
    assert "certificate not trusted" in result["reason"]
    assert "unable to get local issuer certificate" in result["reason"]
    assert "install the mirror's CA with docker_daemon_registry_ca_certs" in rp.detail(result)


def test_a_certificate_for_another_name_is_a_tls_failure(tmp_path, ca):
    tls = ca.server(tmp_path / "server", names=("registry.other.invalid",))
    with serve(401, REGISTRY_HEADERS, tls=tls) as port:
        install_ca(tmp_path / "certs.d", f"localhost:{port}", ca.pem)
        result = rp.probe(f"https://localhost:{port}", certs_dir=str(tmp_path / "certs.d"), environ=NO_PROXY)
    assert result["outcome"] == rp.TLS, result
    assert "Hostname mismatch" in result["reason"] or "hostname" in result["reason"].lower()


def test_https_to_a_plain_http_server_is_a_tls_failure(tmp_path):
    with serve(401, REGISTRY_HEADERS) as port:
        result = rp.probe(f"https://127.0.0.1:{port}", certs_dir=str(tmp_path), environ=NO_PROXY)
    assert result["outcome"] == rp.TLS, result
    assert result["reason"].startswith("TLS handshake failed")


@pytest.mark.parametrize("status", [200, 401])
def test_a_plain_http_registry_passes(tmp_path, status):
    seen = []
    with serve(status, REGISTRY_HEADERS, seen=seen) as port:
        result = rp.probe(f"http://127.0.0.1:{port}", certs_dir=str(tmp_path), environ=NO_PROXY)
    assert result["outcome"] == rp.PASSED, result
    assert seen == ["GET /v2/ HTTP/1.1"]


@pytest.mark.parametrize("status, headers, reason", [
    (404, {}, "answered HTTP 404 without Docker-Distribution-API-Version: registry/2.0"),
    (200, {"Content-Type": "text/html"}, "answered HTTP 200 without Docker-Distribution-API-Version: registry/2.0"),
    (401, {}, "answered HTTP 401 without Docker-Distribution-API-Version: registry/2.0"),
    (404, REGISTRY_HEADERS, "answered HTTP 404 without"),
    (200, {"Docker-Distribution-API-Version": "registry/1.0"},
     "answered HTTP 200 with Docker-Distribution-API-Version: registry/1.0, not registry/2.0"),
])
def test_other_answers_are_not_a_registry(tmp_path, status, headers, reason):
    with serve(status, headers) as port:
        result = rp.probe(f"http://127.0.0.1:{port}/", certs_dir=str(tmp_path), environ=NO_PROXY)
    assert result["outcome"] == rp.NOT_REGISTRY, result
    if status == 404 and headers:
        # A registry's 404 is still not the answer Docker takes for /v2/.
        assert result["reason"].startswith("answered HTTP 404 with Docker-Distribution-API-Version")
    else:
        assert result["reason"] == reason
    assert result["http_status"] == status


def test_a_refused_connection_is_dead(tmp_path):
    result = rp.probe(f"https://127.0.0.1:{closed_port()}", certs_dir=str(tmp_path), environ=NO_PROXY)
    assert (result["outcome"], result["reason"]) == (rp.DEAD, "connection refused")
    assert "start the mirror, or remove it from docker_daemon_registry_mirrors" in rp.detail(result)


def test_a_mirror_that_never_answers_is_dead(tmp_path):
    with silent_listener() as port:
        result = rp.probe(f"http://127.0.0.1:{port}", timeout=0.5, certs_dir=str(tmp_path), environ=NO_PROXY)
    assert (result["outcome"], result["reason"]) == (rp.DEAD, "no answer in 0.5 s")


def test_a_name_that_does_not_resolve_is_dead(tmp_path, monkeypatch):
    import socket

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    result = rp.probe("https://registry-mirror.gpuhost.invalid", certs_dir=str(tmp_path), environ=NO_PROXY)
    assert result["outcome"] == rp.DEAD
    assert result["reason"] == "the name does not resolve (Name or service not known)"


def test_the_probe_goes_through_the_proxy_of_its_environment(tmp_path):
    seen = []
    with serve(401, REGISTRY_HEADERS, seen=seen) as proxy_port:
        environ = {"http_proxy": f"http://user:secret@127.0.0.1:{proxy_port}"}
        result = rp.probe("http://registry-mirror.gpuhost.invalid:5000", certs_dir=str(tmp_path), environ=environ)
    assert result["outcome"] == rp.PASSED, result
    # A proxy gets the absolute URL; the mirror's name is resolved by the proxy, not here.
    assert seen == ["GET http://registry-mirror.gpuhost.invalid:5000/v2/ HTTP/1.1"]
    assert result["proxy"] == f"http://127.0.0.1:{proxy_port}"
    assert "secret" not in rp.detail(result)
    assert rp.detail(result).endswith(f"(through the proxy http://127.0.0.1:{proxy_port})")


def test_a_proxy_that_cannot_reach_the_mirror_makes_it_dead(tmp_path):
    with serve(502, {}) as proxy_port:
        environ = {"HTTP_PROXY": f"http://127.0.0.1:{proxy_port}"}
        result = rp.probe("http://registry-mirror.gpuhost.invalid", certs_dir=str(tmp_path), environ=environ)
    assert result["outcome"] == rp.DEAD
    assert result["reason"] == "the proxy could not reach it (HTTP 502 from the proxy)"


def test_an_https_mirror_through_a_proxy_that_refuses_the_tunnel_is_dead(tmp_path):
    with serve(502, {}) as proxy_port:
        environ = {"https_proxy": f"http://127.0.0.1:{proxy_port}"}
        result = rp.probe("https://registry-mirror.gpuhost.invalid", certs_dir=str(tmp_path), environ=environ)
    assert result["outcome"] == rp.DEAD, result
    assert result["reason"].startswith("the proxy could not reach it (Tunnel connection failed: 502")


def test_no_proxy_sends_the_mirror_direct(tmp_path):
    seen_proxy = []
    with serve(401, REGISTRY_HEADERS) as port, serve(502, {}, seen=seen_proxy) as proxy_port:
        environ = {"http_proxy": f"http://127.0.0.1:{proxy_port}", "no_proxy": "localhost,127.0.0.1"}
        result = rp.probe(f"http://127.0.0.1:{port}", certs_dir=str(tmp_path), environ=environ)
    assert result["outcome"] == rp.PASSED, result
    assert result["proxy"] == ""
    assert seen_proxy == []


def test_the_lower_case_proxy_variable_wins_as_in_urllib():
    proxies = rp.environment_proxies({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2",
                                      "NO_PROXY": ".lab"})
    assert proxies == {"https": "http://lower:2", "no": ".lab"}
    assert rp.proxy_for("https://mirror.lab/v2/", {"https_proxy": "http://p:3128", "no_proxy": ".lab"}) == ""
    assert rp.proxy_for("https://mirror.example/v2/", {"https_proxy": "http://p:3128", "no_proxy": ".lab"}) == \
        "http://p:3128"


@pytest.mark.parametrize("url", ["registry-mirror.example.com", "ftp://mirror.example.com", "https://"])
def test_a_mirror_that_is_not_an_http_url_is_not_a_registry(tmp_path, url):
    result = rp.probe(url, certs_dir=str(tmp_path), environ=NO_PROXY)
    assert result["outcome"] == rp.NOT_REGISTRY
    assert "is not an http:// or https:// URL with a host" in result["reason"]


def test_certs_d_is_named_as_docker_names_it(tmp_path):
    assert rp.registry_host("https://mirror.example.com:5000/") == "mirror.example.com:5000"
    assert rp.registry_host("https://mirror.example.com") == "mirror.example.com"
    (tmp_path / "mirror.example.com:5000").mkdir()
    for name in ("ca.crt", "extra.crt", "client.cert", "client.key"):
        (tmp_path / "mirror.example.com:5000" / name).write_text("x", encoding="utf-8")
    assert rp.ca_files("https://mirror.example.com:5000", str(tmp_path)) == [
        str(tmp_path / "mirror.example.com:5000" / "ca.crt"), str(tmp_path / "mirror.example.com:5000" / "extra.crt")]


def test_an_unreadable_ca_file_is_reported_as_tls(tmp_path):
    install_ca(tmp_path, "127.0.0.1:5000", "not a certificate")
    result = rp.probe("https://127.0.0.1:5000", certs_dir=str(tmp_path), environ=NO_PROXY)
    assert result["outcome"] == rp.TLS
    assert result["reason"].startswith("cannot read the CA certificates")


def test_the_module_makes_a_bad_mirror_a_warning_or_a_required_failure(tmp_path, monkeypatch):
    with serve(404, {}) as port:
        mirrors = [f"http://127.0.0.1:{port}"]
        warned = probe_module.probe_all(mirrors, required=False, certs_dir=str(tmp_path), environ=NO_PROXY)
        failed = probe_module.probe_all(mirrors, required=True, certs_dir=str(tmp_path), environ=NO_PROXY)
    assert [(m["outcome"], m["status"]) for m in warned["mirrors"]] == [("not_registry", "warning")]
    assert warned["failed_mirrors"] == []
    assert [(m["outcome"], m["status"]) for m in failed["mirrors"]] == [("not_registry", "failed")]
    assert failed["failed_mirrors"] == mirrors
    assert failed["mirrors"][0]["detail"].startswith(f"http://127.0.0.1:{port} is not a registry: answered HTTP 404 without")
    assert failed["checks"] == [{"name": f"registry mirror http://127.0.0.1:{port}", "status": "failed",
                                 "detail": failed["mirrors"][0]["detail"]}]


def test_a_working_mirror_passes_whether_required_or_not():
    assert rp.check_status(rp.PASSED, True) == "passed"
    assert rp.check_status(rp.PASSED, False) == "passed"
    for outcome in (rp.DEAD, rp.NOT_REGISTRY, rp.TLS):
        assert rp.check_status(outcome, False) == "warning"
        assert rp.check_status(outcome, True) == "failed"


# ---- The probe's proxy (filter gpuhost_registry_probe_env) -------------------------------

DOCKER_PROXY = "http://proxy.corp.example:3128"
INVENTORY_PROXY = "http://user:secret@proxy.corp.example:3128"


def test_the_probe_takes_dockerd_s_own_proxy_when_docker_has_one():
    info = {"HTTPProxy": DOCKER_PROXY, "HTTPSProxy": "", "NoProxy": "localhost,mirror.lan"}
    assert rp.probe_environment(info, INVENTORY_PROXY, "", ["x.lan"]) == {
        "http_proxy": DOCKER_PROXY, "no_proxy": "localhost,mirror.lan"}


def test_a_masked_password_or_no_docker_proxy_falls_back_to_the_inventory_s():
    masked = {"HTTPProxy": "http://user:xxxxx@proxy.corp.example:3128", "NoProxy": "localhost"}
    expected = {"http_proxy": INVENTORY_PROXY, "https_proxy": INVENTORY_PROXY, "no_proxy": "a.lan,10.0.0.0/8"}
    assert rp.probe_environment(masked, INVENTORY_PROXY, "", ["a.lan", "10.0.0.0/8"]) == expected
    # A no-proxy list alone is not a proxy; the inventory's comma-separated string is kept as it is.
    assert rp.probe_environment({"NoProxy": "localhost"}, INVENTORY_PROXY, "", "a.lan,10.0.0.0/8") == expected
    assert rp.probe_environment({}, "", "https://tls-proxy:8443", []) == {"https_proxy": "https://tls-proxy:8443"}
    assert rp.probe_environment(None) == {}


def test_the_filter_is_the_module_utils_rule():
    from gpuhost_cli.ansible_plugins.filter.registry_probe import FilterModule

    env = FilterModule().filters()["gpuhost_registry_probe_env"]
    assert env({"HTTPSProxy": DOCKER_PROXY}, INVENTORY_PROXY) == {"https_proxy": DOCKER_PROXY}
    # docker info that did not answer (a string, nothing) counts as Docker without a proxy.
    assert env("docker info failed", INVENTORY_PROXY, None, None) == {
        "http_proxy": INVENTORY_PROXY, "https_proxy": INVENTORY_PROXY}
