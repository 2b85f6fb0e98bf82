"""Provisioning from an offline bundle, on the controller: gpuhost_cli.bundle_use (check,
describe, missing), the offline_bundle role's filters, host_plan.bundle_identity and the
playbook variables gpuhost_offline_bundle and gpuhost_offline_bundle_fingerprint.

A directory bundle is verified whole; of a served bundle (loopback HTTP here) only the
signed metadata is fetched into the controller's cache and verified: its .deb files stay on
the server and apt checks each one against the signed Packages index on the host, which
one test shows with apt itself.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from bundle_lab import (BASE_STATUS, DOCKER_VERSIONS, bundle_copy, bundle_key_home, key_fingerprint, made_bundle,
                        standin_mirror)

from gpuhost_cli import bundle_use, host_plan
from gpuhost_cli import inventory_validation as iv
from gpuhost_cli.ansible_plugins.filter.offline_bundle import (FilterModule, gpuhost_offline_bundle_for,
                                                               gpuhost_offline_bundle_missing,
                                                               gpuhost_offline_bundle_sources,
                                                               gpuhost_offline_bundle_verified)
from gpuhost_cli.bundle_signing import BundleKey
from gpuhost_cli.bundle_verify import BundleRefused
from gpuhost_cli.inputs import UserError

__all__ = ["bundle_copy", "bundle_key_home", "made_bundle", "standin_mirror"]

REPO = Path(__file__).resolve().parents[2]


def fingerprint_of(made_bundle):
    return made_bundle["summary"]["key_fingerprint"]


def manifest_of(bundle):
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def deb(bundle, package):
    return next((bundle / "bookworm").glob(f"{package}_*.deb"))


def spaced(fingerprint):
    """A fingerprint as gpg prints it: groups of four, lower case here."""
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4)).lower()


@pytest.fixture
def other_key(tmp_path):
    """A second bundle key, as someone else would make one."""
    key = BundleKey(tmp_path / "other-key")
    yield key
    key.close()


# ---- a directory on the controller ----------------------------------------------------------


def test_check_describes_the_made_bundle_for_the_roles(made_bundle):
    bundle = made_bundle["path"]
    described = bundle_use.check(str(bundle), fingerprint_of(made_bundle))
    assert described["source"] == str(bundle) and described["served"] is False
    assert described["directory"] == str(bundle)
    assert described["fingerprint"] == fingerprint_of(made_bundle)
    assert Path(described["keyring"]) == bundle / "bundle-keyring.gpg" and Path(described["keyring"]).is_file()
    assert list(described["releases"]) == ["bookworm"]
    bookworm = described["releases"]["bookworm"]
    assert bookworm["hosts"] == ["gpu-node-1", "gpu-node-2"]
    manifest = manifest_of(bundle)
    docker_ce = [[p["version"], p["architecture"]] for p in manifest["packages"] if p["package"] == "docker-ce"]
    assert docker_ce == [[DOCKER_VERSIONS[0], docker_ce[0][1]]]
    assert bookworm["packages"]["docker-ce"] == docker_ce
    assert set(bookworm["packages"]) == {p["package"] for p in manifest["packages"]}
    debs = sorted(p.name for p in (bundle / "bookworm").glob("*.deb"))
    assert len(debs) == len(manifest["packages"]) == 11
    for name in ["Packages", "InRelease", "Release", "Release.gpg", *debs]:
        assert name in bookworm["files"], name
    # The copy a host gets is exactly the release's directory: nothing from elsewhere.
    assert set(bookworm["files"]) == {p.name for p in (bundle / "bookworm").iterdir()}


def test_the_fingerprint_may_be_written_as_gpg_prints_it(made_bundle):
    described = bundle_use.check(str(made_bundle["path"]), spaced(fingerprint_of(made_bundle)))
    assert described["fingerprint"] == fingerprint_of(made_bundle)


@pytest.mark.parametrize("fingerprint", ["", "   ", None])
def test_no_fingerprint_is_refused_naming_the_variable(made_bundle, fingerprint):
    with pytest.raises(UserError) as error:
        bundle_use.check(str(made_bundle["path"]), fingerprint)
    assert "gpuhost_offline_bundle_fingerprint is not set" in error.value.message
    assert "gpuhost bundle create` prints it" in error.value.message
    assert not isinstance(error.value, BundleRefused)


@pytest.mark.parametrize("fingerprint", ["ABCD", "0x" + "A" * 40, "G" * 40, "A" * 41])
def test_a_malformed_fingerprint_is_refused(made_bundle, fingerprint):
    with pytest.raises(UserError) as error:
        bundle_use.check(str(made_bundle["path"]), fingerprint)
    assert error.value.message.startswith(f"gpuhost_offline_bundle_fingerprint is {fingerprint!r}: expected the "
                                          f"40 hex digits")


def test_another_key_s_fingerprint_is_refused(made_bundle):
    other = key_fingerprint("docker")
    with pytest.raises(BundleRefused) as error:
        bundle_use.check(str(made_bundle["path"]), other)
    assert error.value.problems == [f"bundle-keyring.gpg: the bundle key is {fingerprint_of(made_bundle)}, not the "
                                    f"{other} given; this bundle was not made with your key"]


@pytest.mark.parametrize("source", ["bundle-2026-12", "./srv/bundles/2026-12", "~/bundle", "ftp://host/bundle", ""])
def test_a_source_that_is_no_absolute_path_nor_url_is_refused_naming_the_variable(made_bundle, source):
    with pytest.raises(UserError) as error:
        bundle_use.check(source, fingerprint_of(made_bundle))
    assert error.value.message.startswith(f"gpuhost_offline_bundle is {source!r}: give the absolute path")
    assert "http(s) URL" in error.value.message


def test_a_directory_that_is_not_there_is_refused(made_bundle, tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        bundle_use.check(str(tmp_path / "nothing"), fingerprint_of(made_bundle))


def test_a_swapped_deb_in_a_directory_is_refused_naming_it(bundle_copy, made_bundle):
    tini = deb(bundle_copy, "tini")
    shutil.copyfile(deb(bundle_copy, "python3-tomlkit"), tini)
    with pytest.raises(BundleRefused) as error:
        bundle_use.check(str(bundle_copy), fingerprint_of(made_bundle))
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith(f"bookworm/{tini.name}: ")
    assert f"bookworm/{tini.name}" in error.value.message


def test_an_extra_file_in_a_directory_is_refused(bundle_copy, made_bundle):
    (bundle_copy / "bookworm" / "evil_1.0_amd64.deb").write_bytes(b"!<arch>\n")
    with pytest.raises(BundleRefused) as error:
        bundle_use.check(str(bundle_copy), fingerprint_of(made_bundle))
    assert error.value.problems == ["bookworm/evil_1.0_amd64.deb: not in the manifest"]


# ---- a bundle served over HTTP --------------------------------------------------------------


class _Logged(http.server.SimpleHTTPRequestHandler):
    """Serves the directory; keeps the paths asked for in ``self.server.asked``."""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        self.server.asked.append(self.path)
        super().do_GET()


@pytest.fixture
def served(made_bundle, tmp_path, monkeypatch):
    """{url, path, cache, asked}: a copy of the made bundle served on 127.0.0.1 at URL; the
    controller's cache (XDG_CACHE_HOME) in CACHE; ASKED: the paths the server was asked for."""
    root = tmp_path / "www"
    copy = root / "bundles" / "2026-12"
    shutil.copytree(made_bundle["path"], copy)
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Logged, directory=str(root)))
    server.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}/bundles/2026-12", "path": copy,
               "cache": cache, "asked": server.asked, "fingerprint": fingerprint_of(made_bundle)}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def served_refused(served):
    with pytest.raises(UserError) as error:
        bundle_use.check(served["url"], served["fingerprint"])
    return error.value


def test_a_served_bundle_passes_and_only_its_metadata_is_downloaded(served):
    described = bundle_use.check(served["url"] + "/", served["fingerprint"])
    assert described["served"] is True and described["source"] == served["url"] + "/"
    assert described["fingerprint"] == served["fingerprint"]
    directory = Path(described["directory"])
    assert served["cache"] in directory.parents and Path(described["keyring"]) == directory / "bundle-keyring.gpg"
    assert Path(described["keyring"]).read_bytes() == (served["path"] / "bundle-keyring.gpg").read_bytes()
    cached = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert not [name for name in cached if name.endswith(".deb")], cached
    for name in ("manifest.json", "manifest.json.asc", "bundle-keyring.gpg", "bookworm/Release",
                 "bookworm/InRelease", "bookworm/Release.gpg", "bookworm/Packages"):
        assert name in cached, name
    assert not [path for path in served["asked"] if path.endswith(".deb")], served["asked"]
    # The roles see the same releases and packages as from the directory itself.
    local = bundle_use.describe(served["path"], str(served["path"]), served=False)
    assert described["releases"] == local["releases"]
    # Nothing is left over in the cache but the bundle's one copy.
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]


def test_a_served_bundle_checked_again_replaces_its_cached_copy(served):
    first = bundle_use.check(served["url"], served["fingerprint"])
    stale = Path(first["directory"]) / "bookworm" / "stale-file"
    stale.write_text("left from before\n", encoding="utf-8")
    again = bundle_use.check(served["url"], served["fingerprint"])
    assert again["directory"] == first["directory"] and not stale.exists()


def test_a_served_bundle_with_an_edited_packages_index_is_refused_naming_it(served):
    packages = served["path"] / "bookworm" / "Packages"
    packages.write_text(packages.read_text(encoding="utf-8").replace("Package: tini", "Package: tiny"),
                        encoding="utf-8")
    error = served_refused(served)
    assert isinstance(error, BundleRefused)
    assert "bookworm/Packages: does not match the hash in bookworm/Release" in error.problems


def test_a_served_bundle_without_the_manifest_s_signature_is_refused_naming_it(served):
    (served["path"] / "manifest.json.asc").unlink()
    error = served_refused(served)
    assert error.message.startswith(f"gpuhost_offline_bundle: {served['url']}/manifest.json.asc answered HTTP 404")


def test_a_served_bundle_whose_release_is_signed_again_by_another_key_is_refused(served, other_key):
    folder = served["path"] / "bookworm"
    release = (folder / "Release").read_bytes()
    (folder / "InRelease").write_bytes(other_key.clearsign(release))
    (folder / "Release.gpg").write_bytes(other_key.detached(release))
    error = served_refused(served)
    assert isinstance(error, BundleRefused)
    assert any(p.startswith("bookworm/InRelease: not signed by the bundle key") for p in error.problems)
    assert any(p.startswith("bookworm/Release.gpg: not a signature of bookworm/Release") for p in error.problems)


def test_a_served_bundle_of_another_key_is_refused(served):
    with pytest.raises(BundleRefused, match="this bundle was not made with your key"):
        bundle_use.check(served["url"], key_fingerprint("nvidia"))


def test_a_server_that_answers_404_is_named_with_the_url(served):
    url = served["url"].replace("2026-12", "2027-01")
    with pytest.raises(UserError) as error:
        bundle_use.check(url, served["fingerprint"])
    assert error.value.message == (f"gpuhost_offline_bundle: {url}/manifest.json answered HTTP 404; is the bundle "
                                   f"served there, whole?")


def test_a_server_that_is_not_there_is_named_with_the_url(served, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/bundle"
    with pytest.raises(UserError) as error:
        bundle_use.check(url, served["fingerprint"])
    assert error.value.message.startswith(f"gpuhost_offline_bundle: {url}/manifest.json cannot be read from the "
                                          f"controller")


def test_a_served_manifest_naming_a_release_outside_the_bundle_writes_nothing_outside_the_cache(served):
    """The served manifest is not trusted before its signature is checked: one whose release
    name climbs out of the bundle must not make the controller write outside its cache."""
    manifest = manifest_of(served["path"])
    manifest["releases"].append({"release": "../../../../escaped", "distribution": "Debian", "hosts": []})
    (served["path"] / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    # The server normalises the climb away: it serves www/escaped/ for it, whole.
    on_server = served["path"].parent.parent / "escaped"
    on_server.mkdir()
    for name in ("Release", "InRelease", "Release.gpg", "Packages", "Packages.gz"):
        (on_server / name).write_text("written by whoever runs the server\n", encoding="utf-8")
    with pytest.raises(UserError) as error:
        bundle_use.check(served["url"], served["fingerprint"])
    assert not (served["cache"].parent / "escaped").exists(), "ESCAPED"
    assert "../../../../escaped" in error.value.message
    # Where the climb leads from the controller's cache directory.
    assert not (served["cache"].parent / "escaped").exists()
    assert not list(served["cache"].rglob("escaped"))


def apt_download(url, keyring, packages, work):
    """apt-get install --download-only PACKAGES on a host with the stand-in base system
    (bundle_lab.BASE_STATUS) whose only source is the served bundle's bookworm directory,
    trusted through signed-by KEYRING as the offline_bundle role writes it."""
    for sub in ("parts", "lists/partial", "archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "sources.list").write_text(f"deb [signed-by={keyring} check-date=no] {url}/bookworm ./\n",
                                       encoding="utf-8")
    settings = {"Dir::Etc::Parts": work / "parts", "Dir::Etc::main": "/dev/null",
                "Dir::Etc::SourceList": work / "sources.list", "Dir::Etc::SourceParts": work / "parts",
                "Dir::Etc::TrustedParts": work / "parts", "Dir::Etc::Trusted": work / "none.gpg",
                "Dir::State::Lists": work / "lists", "Dir::State::status": BASE_STATUS, "Dir::Cache": work,
                "Dir::Cache::archives": work / "archives", "Debug::NoLocking": "1", "Acquire::Retries": "0",
                "Acquire::http::Proxy": "DIRECT"}
    if os.geteuid() == 0:
        settings["APT::Sandbox::User"] = "root"
    (work / "apt.conf").write_text("".join(f'{k} "{v}";\n' for k, v in settings.items()), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(LC_ALL="C.UTF-8", APT_CONFIG=str(work / "apt.conf"))
    update = subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=60)
    assert update.returncode == 0 and "W:" not in update.stderr and "E:" not in update.stderr, update.stderr
    return subprocess.run(["apt-get", "install", "-y", "--download-only", "--no-install-recommends", *packages],
                          capture_output=True, text=True, env=env, timeout=60)


def test_a_deb_swapped_on_the_server_passes_the_controller_and_apt_refuses_it_on_the_host(served, tmp_path):
    """The controller does not download a served bundle's .deb files; a .deb swapped on the
    server is caught by apt, against the signed Packages index, where the host downloads it."""
    for tool in ("apt-get",):
        assert shutil.which(tool), f"{tool} is needed"
    described = bundle_use.check(served["url"], served["fingerprint"])
    fetched = apt_download(served["url"], described["keyring"], ["tini"], tmp_path / "apt-intact")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    tini = deb(served["path"], "tini")
    assert [p.name for p in (tmp_path / "apt-intact" / "archives").glob("*.deb")] == [tini.name]

    shutil.copyfile(deb(served["path"], "python3-tomlkit"), tini)
    served["asked"].clear()
    again = bundle_use.check(served["url"], served["fingerprint"])   # not detected here, by design
    assert again["releases"] == described["releases"]
    assert not [path for path in served["asked"] if path.endswith(".deb")]

    refused = apt_download(served["url"], again["keyring"], ["tini"], tmp_path / "apt-swapped")
    assert refused.returncode != 0, refused.stdout
    assert tini.name in refused.stderr or "tini" in refused.stderr, refused.stderr
    assert "Hash Sum mismatch" in refused.stderr or "File has unexpected size" in refused.stderr, refused.stderr
    assert not list((tmp_path / "apt-swapped" / "archives").glob("*.deb"))


# ---- which install lines a bundle has ---------------------------------------------------------

BUNDLE = {"releases": {
    "bookworm": {"packages": {
        "docker-ce": [["5:27.5.1-1~debian.12~bookworm", "amd64"]],
        "nvidia-container-toolkit": [["1.17.8-1", "amd64"], ["1.18.1-1", "amd64"], ["1.18.1-1", "arm64"]],
        "python3-tomlkit": [["0.11.7-1", "all"]],
    }},
}}


def test_a_name_only_line_is_found_in_the_bundle():
    assert bundle_use.missing(BUNDLE, "bookworm", "amd64", ["docker-ce", "nvidia-container-toolkit"]) == []


def test_a_pin_the_bundle_lacks_is_reported():
    lines = ["docker-ce=5:27.5.1-1~debian.12~bookworm", "docker-ce=5:27.6.0-1~debian.12~bookworm",
             "nvidia-container-toolkit=1.18.1-1", "nvidia-container-toolkit=1.17.9-1"]
    assert bundle_use.missing(BUNDLE, "bookworm", "amd64", lines) == [
        "docker-ce=5:27.6.0-1~debian.12~bookworm", "nvidia-container-toolkit=1.17.9-1"]


def test_a_package_of_another_architecture_is_reported():
    assert bundle_use.missing(BUNDLE, "bookworm", "arm64", ["docker-ce", "nvidia-container-toolkit=1.17.8-1",
                                                            "nvidia-container-toolkit=1.18.1-1"]) == [
        "docker-ce", "nvidia-container-toolkit=1.17.8-1"]


def test_an_architecture_all_package_fits_every_host():
    for arch in ("amd64", "arm64"):
        assert bundle_use.missing(BUNDLE, "bookworm", arch, ["python3-tomlkit", "python3-tomlkit=0.11.7-1"]) == []


def test_a_package_not_in_the_bundle_is_reported():
    assert bundle_use.missing(BUNDLE, "bookworm", "amd64", ["docker-ce", "containerd.io"]) == ["containerd.io"]


def test_every_line_is_missing_for_a_release_the_bundle_has_not():
    lines = ["docker-ce", "nvidia-container-toolkit=1.18.1-1"]
    assert bundle_use.missing(BUNDLE, "trixie", "amd64", lines) == lines
    assert bundle_use.missing({}, "bookworm", "amd64", lines) == lines


def test_missing_against_the_made_bundle_s_pins(made_bundle):
    described = bundle_use.describe(made_bundle["path"], str(made_bundle["path"]), served=False)
    arch = described["releases"]["bookworm"]["packages"]["docker-ce"][0][1]
    assert gpuhost_offline_bundle_missing(described, "bookworm", arch,
                                          [f"docker-ce={DOCKER_VERSIONS[0]}", "tini", "containerd.io"]) == []
    assert gpuhost_offline_bundle_missing(described, "bookworm", arch, [f"docker-ce={DOCKER_VERSIONS[1]}"]) == [
        f"docker-ce={DOCKER_VERSIONS[1]}"]


# ---- the role's filters --------------------------------------------------------------------------

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"gpuhost_offline_bundle_sources", "gpuhost_offline_bundle_verified",
                                             "gpuhost_offline_bundle_for", "gpuhost_offline_bundle_missing"}


def test_sources_group_the_hosts_by_bundle_with_the_fingerprint_written_any_way():
    hostvars = {
        "gpu1": {"__offline_bundle_wanted": {"src": "/srv/bundles/2026-12", "fingerprint": FPR}},
        "gpu2": {"__offline_bundle_wanted": {"src": " /srv/bundles/2026-12 ", "fingerprint": spaced(FPR)}},
        "gpu3": {"__offline_bundle_wanted": {"src": "http://bundles.lan/2026-12", "fingerprint": FPR}},
        "gpu4": {"ansible_host": "10.0.0.4"},
        "gpu5": {"__offline_bundle_wanted": {"src": "  ", "fingerprint": FPR}},
        "gpu6": {"__offline_bundle_wanted": {}},
        "gpu7": {"__offline_bundle_wanted": {"src": "/srv/bundles/2026-12", "fingerprint": ""}},
    }
    found = gpuhost_offline_bundle_sources(list(hostvars) + ["not-in-hostvars"], hostvars)
    assert found == [
        {"src": "/srv/bundles/2026-12", "fingerprint": "", "key": "/srv/bundles/2026-12|", "hosts": ["gpu7"]},
        {"src": "/srv/bundles/2026-12", "fingerprint": FPR, "key": f"/srv/bundles/2026-12|{FPR}",
         "hosts": ["gpu1", "gpu2"]},
        {"src": "http://bundles.lan/2026-12", "fingerprint": FPR, "key": f"http://bundles.lan/2026-12|{FPR}",
         "hosts": ["gpu3"]},
    ]
    # A bundle verified earlier in the run is not checked again.
    again = gpuhost_offline_bundle_sources(list(hostvars), hostvars, {f"/srv/bundles/2026-12|{FPR}": {"x": 1}})
    assert [item["key"] for item in again] == ["/srv/bundles/2026-12|", f"http://bundles.lan/2026-12|{FPR}"]
    assert gpuhost_offline_bundle_sources([], hostvars) == []


def test_verified_and_for_round_trip_a_looped_task_s_results(made_bundle):
    described = bundle_use.describe(made_bundle["path"], str(made_bundle["path"]), served=False)
    items = gpuhost_offline_bundle_sources(["gpu1", "gpu2"], {
        "gpu1": {"__offline_bundle_wanted": {"src": str(made_bundle["path"]), "fingerprint": FPR}},
        "gpu2": {"__offline_bundle_wanted": {"src": "http://bundles.lan/b", "fingerprint": FPR}}})
    results = [{"item": items[0], "bundle": described, "changed": False},
               {"item": items[1], "failed": True, "msg": "refused"},
               {"skipped": True}]
    verified = gpuhost_offline_bundle_verified(results)
    assert verified == {items[0]["key"]: described}
    assert gpuhost_offline_bundle_for(verified, f" {made_bundle['path']} ", spaced(FPR)) == described
    assert gpuhost_offline_bundle_for(verified, "http://bundles.lan/b", FPR) == {}
    assert gpuhost_offline_bundle_for(verified, str(made_bundle["path"]), key_fingerprint("docker")) == {}
    assert gpuhost_offline_bundle_for(None, "/x", FPR) == {}
    assert gpuhost_offline_bundle_verified(None) == {}


# ---- the converged-host plan ----------------------------------------------------------------------


def test_a_directory_bundle_counts_by_its_manifest(bundle_copy):
    first = host_plan.bundle_identity(str(bundle_copy))
    manifest = (bundle_copy / "manifest.json").read_bytes()
    assert first == {"path": str(bundle_copy), "manifest_sha256": hashlib.sha256(manifest).hexdigest()}
    assert host_plan.bundle_identity(str(bundle_copy)) == first
    (bundle_copy / "manifest.json").write_bytes(manifest.replace(b'"format"', b'"format" ', 1))
    second = host_plan.bundle_identity(str(bundle_copy))
    assert second["path"] == first["path"] and second["manifest_sha256"] != first["manifest_sha256"]


@pytest.mark.parametrize("value", ["", "http://bundles.lan/2026-12", "https://bundles.lan/2026-12/", None,
                                   "relative/dir", "/no/such/bundle"])
def test_a_served_bundle_and_no_bundle_count_as_they_are(value):
    assert host_plan.bundle_identity(value) == value


# ---- the playbook variables -------------------------------------------------------------------------

SPECS, PREFIXES = iv.load_catalog(sorted((REPO / "roles").glob("*/meta/argument_specs.yml")))


def test_the_bundle_variables_are_known_playbook_variables():
    assert iv.validate_vars("gpu1", {"gpuhost_offline_bundle": "/srv/bundles/2026-12",
                                     "gpuhost_offline_bundle_fingerprint": spaced(FPR)}, SPECS, PREFIXES) == []
    assert iv.validate_vars("gpu1", {"gpuhost_offline_bundle": "https://bundles.lan/2026-12"}, SPECS, PREFIXES) == []
    assert {"gpuhost_offline_bundle", "gpuhost_offline_bundle_fingerprint"} <= set(iv.HOST_SETTINGS)
    # The role that does the work is internal: its own variables are not inventory settings.
    assert "offline_bundle_" not in PREFIXES
    assert "offline_bundle_source" not in SPECS


@pytest.mark.parametrize(("variables", "words"), [
    ({"gpuhost_offline_bundle": ["/srv/bundles/2026-12"]}, "variable 'gpuhost_offline_bundle': expected a str"),
    ({"gpuhost_offline_bundle": True}, "variable 'gpuhost_offline_bundle': expected a str"),
    ({"gpuhost_offline_bundle_fingerprint": 1234}, "variable 'gpuhost_offline_bundle_fingerprint': expected a str"),
    ({"gpuhost_offline_bundel": "/srv/b"}, "unknown variable 'gpuhost_offline_bundel'"),
])
def test_a_wrong_bundle_variable_is_refused_naming_it(variables, words):
    errors = iv.validate_vars("gpu1", variables, SPECS, PREFIXES)
    assert len(errors) == 1 and errors[0].startswith("host gpu1: "), errors
    assert words in errors[0], errors[0]


# ---- the role's checks in a real ansible-playbook (nothing on any host changes) ----------------

CHECK_PLAY = """
- name: Check the offline bundle as the docker role's preflight does
  hosts: all
  gather_facts: false
  tasks:
    - name: Take the host's release and architecture from the inventory
      ansible.builtin.set_fact:
        ansible_facts: >-
          {{ ansible_facts | combine({'distribution': 'Debian', 'distribution_release': host_release,
                                      'architecture': host_architecture}) }}

    - name: Check
      ansible.builtin.include_role:
        name: offline_bundle
        tasks_from: check
      vars:
        offline_bundle_name: Docker
        offline_bundle_packages: "{{ host_lines }}"
        offline_bundle_packages_vars: [docker_version]
"""


@pytest.fixture
def check_play(tmp_path, made_bundle):
    """Run roles/offline_bundle/tasks/check.yml in check mode over local hosts that take their
    release from the inventory; returns (exit status, {task name: {host: result}}, {host: stats})."""
    described = bundle_use.describe(made_bundle["path"], str(made_bundle["path"]), served=False)
    architecture = {"amd64": "x86_64", "arm64": "aarch64"}[described["architecture"]]
    playbook = tmp_path / "check.yml"
    playbook.write_text(CHECK_PLAY, encoding="utf-8")

    def run(hosts, **group_vars):
        group = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "host_architecture": architecture, **group_vars}
        inventory = {"all": {"hosts": hosts, "vars": group}}
        (tmp_path / "hosts.yml").write_text(json.dumps(inventory), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_HOME=str(tmp_path / "ansible-home"),
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_NOCOLOR="1")
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--check", "-i",
                               str(tmp_path / "hosts.yml"), str(playbook)],
                              cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"no JSON (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}") from None
        # The role's tasks are named "offline_bundle : Offline bundle | ...".
        tasks = {task["task"]["name"].split(" : ", 1)[-1]: task["hosts"] for task in report["plays"][0]["tasks"]}
        return proc.returncode, tasks, report["stats"]

    return run


VERIFY_TASK = "Offline bundle | Verify each bundle on the controller before any host changes"
RELEASE_TASK = "Offline bundle | Check that the bundle has this host's release"
LINES_TASK = "Offline bundle | Check that the bundle has what this host installs: Docker"


def test_the_role_s_checks_name_each_host_s_problem(check_play, made_bundle):
    hosts = {"gpu-a": {"host_release": "bookworm", "host_lines": [f"docker-ce={DOCKER_VERSIONS[0]}", "tini"]},
             "gpu-b": {"host_release": "trixie", "host_lines": ["docker-ce"]},
             "gpu-c": {"host_release": "bookworm", "host_lines": [f"docker-ce={DOCKER_VERSIONS[1]}"]},
             "gpu-d": {"host_release": "noble", "host_lines": ["docker-ce"], "gpuhost_offline_bundle": ""}}
    rc, tasks, stats = check_play(hosts, gpuhost_offline_bundle=str(made_bundle["path"]),
                                  gpuhost_offline_bundle_fingerprint=spaced(fingerprint_of(made_bundle)))
    assert rc == 2, tasks
    assert {host: stats[host]["failures"] for host in hosts} == {"gpu-a": 0, "gpu-b": 1, "gpu-c": 1, "gpu-d": 0}
    assert all(stats[host]["changed"] == 0 for host in hosts)
    # One check of the bundle for the three hosts that use it, on the controller.
    verified = next(iter(tasks[VERIFY_TASK].values()))
    assert [r["item"]["hosts"] for r in verified["results"]] == [["gpu-a", "gpu-b", "gpu-c"]]
    assert "verified, signed by " + fingerprint_of(made_bundle) in verified["results"][0]["msg"]
    release = tasks[RELEASE_TASK]
    assert not release["gpu-a"].get("failed") and not release["gpu-c"].get("failed")
    assert release["gpu-b"]["failed"] is True
    assert release["gpu-b"]["msg"].startswith(f"gpu-b: the offline bundle {made_bundle['path']} "
                                              f"(gpuhost_offline_bundle) has no packages for Debian trixie; it has "
                                              f"bookworm.")
    assert release["gpu-d"].get("skipped") is True
    lines = tasks[LINES_TASK]
    assert not lines["gpu-a"].get("failed")
    assert "gpu-b" not in lines
    assert lines["gpu-c"]["failed"] is True
    assert lines["gpu-c"]["msg"].startswith(f"gpu-c: the offline bundle {made_bundle['path']} (gpuhost_offline_bundle)"
                                            f" has no docker-ce={DOCKER_VERSIONS[1]} for bookworm")
    assert "(docker_version decide it)" in lines["gpu-c"]["msg"]
    assert "Nothing was changed on this host." in lines["gpu-c"]["msg"]


def test_the_role_s_checks_stop_every_host_of_a_bundle_of_another_key(check_play, made_bundle):
    hosts = {"gpu-a": {"host_release": "bookworm", "host_lines": ["docker-ce"]},
             "gpu-b": {"host_release": "bookworm", "host_lines": ["docker-ce"]}}
    other = key_fingerprint("docker")
    rc, tasks, stats = check_play(hosts, gpuhost_offline_bundle=str(made_bundle["path"]),
                                  gpuhost_offline_bundle_fingerprint=other)
    assert rc == 2, tasks
    # The check runs once, on the controller (reported for the first host), and its failure
    # stops every host of the play: no later task runs anywhere.
    assert list(tasks[VERIFY_TASK]) == ["gpu-a"] and list(tasks)[-1] == VERIFY_TASK
    assert stats["gpu-a"]["failures"] == 1 and all(stats[host]["changed"] == 0 for host in hosts)
    verified = tasks[VERIFY_TASK]["gpu-a"]
    assert verified["failed"] is True
    message = verified["results"][0]["msg"]
    assert message.startswith(f"gpuhost_offline_bundle {made_bundle['path']} (used by gpu-a, gpu-b): bundle ")
    assert f"the bundle key is {fingerprint_of(made_bundle)}, not the {other} given" in message
    assert message.endswith("Nothing was changed on any host.")
    assert RELEASE_TASK not in tasks
