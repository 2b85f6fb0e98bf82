"""The simulated Ubuntu host images: the files build-images.sh writes into a Debian userland so
that it identifies as Ubuntu 22.04 or 24.04 exactly as Ubuntu does. The images themselves are
built and checked with Ansible's facts in the Docker-backed runs; here sim_rootfs writes the
files into tmp_path."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpuhost_cli.ansible_plugins.module_utils.gpuhost_platforms import RELEASES

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "gpuhost_cli" / "lab" / "assets"
KEYS = REPO / "tests" / "harness" / "mirror" / "keys"
SIMS = [r for r in RELEASES if r["id"] == "ubuntu"]
MIRROR = "http://gpuhost-mirror:8080"

# Ubuntu's os-release files as the real releases ship them (tests/fixtures/os-release).
OS_RELEASE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "os-release"
UBUNTU_OS_RELEASE = {path.name.removeprefix("ubuntu-"): path.read_text(encoding="utf-8")
                     for path in sorted(OS_RELEASE_DIR.glob("ubuntu-*"))}
DEBIAN_VERSION = {"jammy": "bookworm/sid\n", "noble": "trixie/sid\n"}
POINT = {"jammy": "22.04.5", "noble": "24.04.3"}

needs_gpg = pytest.mark.skipif(not shutil.which("gpg"), reason="gpg is not installed")


def run(args, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    """Each simulated release's files, written by build-images.sh's sim_rootfs."""
    out = tmp_path_factory.mktemp("sims")
    keyring = out / "keyring.gpg"
    keyring.write_bytes(b"keyring")
    roots = {}
    for release in SIMS:
        root = out / release["lab_image"]
        proc = run(["bash", "-c", f'source "{ASSETS}/build-images.sh"; sim_rootfs "$@"', "sim_rootfs",
                    release["lab_image"], str(root), str(keyring), MIRROR])
        assert proc.returncode == 0, proc.stderr
        roots[release["codename"]] = root
    return roots


def test_every_release_has_a_lab_image_that_build_images_knows():
    """The script's targets are the release list's lab images (no second list to drift)."""
    proc = run(["bash", str(ASSETS / "build-images.sh"), "no-such-image"])
    assert proc.returncode == 1
    for release in RELEASES:
        assert release["lab_image"] in proc.stderr
    assert [r["lab_image"] for r in SIMS] == ["ubuntu22-sim", "ubuntu24-sim"]


@pytest.mark.parametrize("release", SIMS, ids=lambda r: r["lab_image"])
def test_a_sim_identifies_as_ubuntu_as_ubuntu_does(sims, release):
    root = sims[release["codename"]]
    codename = release["codename"]
    assert (root / "usr/lib/os-release").read_text() == UBUNTU_OS_RELEASE[codename]
    assert os.readlink(root / "etc/os-release") == "../usr/lib/os-release"
    assert (root / "etc/lsb-release").read_text() == (
        f"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE={release['version']}\nDISTRIB_CODENAME={codename}\n"
        f'DISTRIB_DESCRIPTION="Ubuntu {POINT[codename]} LTS"\n')
    assert (root / "etc/debian_version").read_text() == DEBIAN_VERSION[codename]
    marker = (root / "etc/gpuhost-simulated-release").read_text()
    assert marker.startswith(f"SIMULATED Ubuntu {release['version']} ({codename})")
    assert "Debian" in marker and "STAND-IN" in marker
    assert (root / "etc/hostname").read_text() == f"{release['lab_image']}-test-host\n"


@pytest.mark.parametrize("release", SIMS, ids=lambda r: r["lab_image"])
def test_the_os_release_reader_ansible_uses_sees_the_release_of_the_release_list(sims, release):
    from ansible.module_utils import distro

    found = distro.LinuxDistribution(root_dir=str(sims[release["codename"]]), include_lsb=False,
                                     include_uname=False)
    assert found.id() == "ubuntu"
    assert found.version() == release["version"]
    assert found.codename() == release["codename"]
    assert found.like() == "debian"
    assert found.name(pretty=True) == f"Ubuntu {POINT[release['codename']]} LTS"


def test_jammy_lists_the_ubuntu_archive_stand_in_as_a_one_line_source(sims):
    text = (sims["jammy"] / "etc/apt/sources.list.d/ubuntu-standin.list").read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# STAND-IN of Ubuntu's archive")
    assert [ln for ln in lines if not ln.startswith("#")] == [
        "deb [signed-by=/usr/share/keyrings/ubuntu-archive-standin.gpg] "
        "http://gpuhost-mirror:8080/ubuntu jammy universe"]
    assert not (sims["jammy"] / "etc/apt/sources.list.d/ubuntu-standin.sources").exists()
    assert (sims["jammy"] / "usr/share/keyrings/ubuntu-archive-standin.gpg").read_bytes() == b"keyring"


def test_noble_lists_the_ubuntu_archive_stand_in_in_deb822(sims):
    text = (sims["noble"] / "etc/apt/sources.list.d/ubuntu-standin.sources").read_text()
    assert text.startswith("# STAND-IN of Ubuntu's archive")
    fields = dict(ln.split(": ", 1) for ln in text.splitlines() if not ln.startswith("#"))
    assert fields == {"Types": "deb", "URIs": "http://gpuhost-mirror:8080/ubuntu", "Suites": "noble",
                      "Components": "universe", "Signed-By": "/usr/share/keyrings/ubuntu-archive-standin.gpg"}
    assert not (sims["noble"] / "etc/apt/sources.list.d/ubuntu-standin.list").exists()


@pytest.mark.parametrize("args, stdout", [
    (["-a"], "Distributor ID:\tUbuntu\nDescription:\tUbuntu 22.04.5 LTS\nRelease:\t22.04\nCodename:\tjammy\n"),
    (["-i"], "Distributor ID:\tUbuntu\n"),
    (["-r"], "Release:\t22.04\n"),
    (["-c"], "Codename:\tjammy\n"),
    (["-d"], "Description:\tUbuntu 22.04.5 LTS\n"),
    (["-s", "-c"], "jammy\n"),
    (["-sc"], "jammy\n"),
    (["-rs"], "22.04\n"),
    (["-is"], "Ubuntu\n"),
    (["-sd"], "Ubuntu 22.04.5 LTS\n"),
    (["-cirs"], "Ubuntu\n22.04\njammy\n"),
    (["--short", "--release"], "22.04\n"),
    (["-as"], "Ubuntu\nUbuntu 22.04.5 LTS\n22.04\njammy\n"),
    ([], ""),
])
def test_lsb_release_answers_as_ubuntu_s(sims, args, stdout):
    proc = run(["/bin/sh", str(ASSETS / "sim" / "lsb_release"), *args],
               {"LSB_ETC_LSB_RELEASE": str(sims["jammy"] / "etc/lsb-release")})
    assert proc.returncode == 0
    assert proc.stdout == stdout
    # Ubuntu's says so on stderr whenever the LSB modules are asked for (-a, -v, nothing).
    asks_modules = not args or any("a" in a for a in args if not a.startswith("--"))
    assert proc.stderr == ("No LSB modules are available.\n" if asks_modules else "")


def test_lsb_release_refuses_an_unknown_option(sims):
    proc = run(["/bin/sh", str(ASSETS / "sim" / "lsb_release"), "-x"],
               {"LSB_ETC_LSB_RELEASE": str(sims["noble"] / "etc/lsb-release")})
    assert proc.returncode == 2
    assert "lsb_release: error: no such option: -x" in proc.stderr


@needs_gpg
def test_the_ubuntu_stand_in_key_is_a_signing_key_of_its_own():
    def fields(name, kind):
        listing = run(["gpg", "--batch", "--with-colons", "--show-keys", str(KEYS / f"{name}-standin.public.asc")])
        return [ln.split(":")[9] for ln in listing.stdout.splitlines() if ln.startswith(kind + ":")]

    assert fields("ubuntu", "uid") == [
        "gpuhost ubuntu stand-in repository key (tests only) <ubuntu-standin@gpuhost.invalid>"]
    fprs = set(fields("ubuntu", "fpr"))
    assert len(fprs) == 1
    for other in ("docker", "nvidia", "rogue"):
        assert not fprs & set(fields(other, "fpr"))
    assert (KEYS / "ubuntu-standin.secret.asc").read_text().startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
