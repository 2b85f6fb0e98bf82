"""The apt configuration that points lab and test hosts at the shared apt cache."""

import os
import subprocess
from pathlib import Path

from gpuhost_cli.lab.fleet import APT_CACHE_NAME, APT_CACHE_PORT, Lab

SCRIPT = Path(__file__).resolve().parents[2] / "gpuhost_cli" / "lab" / "assets" / "apt-cache.sh"


def print_conf(**env):
    proc = subprocess.run(["bash", str(SCRIPT), "--print-conf"], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return proc.stdout


def proxy_lines(conf):
    return [line for line in conf.splitlines() if not line.startswith("//")]


def test_only_debians_archive_goes_through_the_cache():
    conf = print_conf(DEBIAN_MIRROR="http://deb.debian.org/debian", GPUHOST_APT_CACHE_NAME=APT_CACHE_NAME)
    assert proxy_lines(conf) == [
        f'Acquire::http::Proxy::deb.debian.org "http://{APT_CACHE_NAME}:{APT_CACHE_PORT}";']
    # No global proxy: the stand-in mirror and every other repository stay direct.
    assert 'Acquire::http::Proxy "' not in conf
    assert "gpuhost-mirror" not in conf


def test_the_archive_host_follows_debian_mirror_and_the_cache_name():
    conf = print_conf(DEBIAN_MIRROR="http://ftp.de.debian.org:80/debian/", GPUHOST_APT_CACHE_NAME="other-cache")
    assert proxy_lines(conf) == ['Acquire::http::Proxy::ftp.de.debian.org "http://other-cache:3142";']


def test_printing_the_configuration_needs_no_docker(tmp_path):
    # --print-conf touches nothing: it works with no docker command on the PATH.
    conf = print_conf(PATH=f"{tmp_path}:/usr/bin:/bin", DEBIAN_MIRROR="http://deb.debian.org/debian")
    assert "apt-cacher-ng" in conf


def test_unknown_options_are_refused():
    proc = subprocess.run(["bash", str(SCRIPT), "--proxy-everything"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "unknown option '--proxy-everything'" in proc.stderr


def test_the_lab_names_its_cache_unless_told_not_to_use_one(tmp_path):
    assert Lab(state_dir=tmp_path).apt_cache_url == f"http://{APT_CACHE_NAME}:{APT_CACHE_PORT}"
    assert Lab(state_dir=tmp_path, apt_cache=False).apt_cache_url is None
