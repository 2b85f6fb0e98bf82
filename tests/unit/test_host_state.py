"""The host side of the converged-host plan (module_utils/gpuhost_host_state.py, module gpuhost_host_state).

Every item kind is read from a fake host: a directory tree under tmp_path that HostReader
takes as its root (dpkg's status, /etc/group, apt sources, /dev/char links), with a
systemctl answered by a function. The plan is then checked item kind by item kind: a
change the role enforces makes its role drift, with a line that names the item, and
undoing the change makes the role converged again. Last, each role's own list of items
(__<role>_state_items) is rendered as a play renders it, and read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader
from ansible.template import Templar, trust_as_template
from plugin_loader import ModuleFail, load_module, run_main, use_module_utils

use_module_utils()
from ansible.module_utils import gpuhost_host_state as hs  # noqa: E402

host_state_module = load_module("gpuhost_host_state")

REPO = Path(__file__).resolve().parents[2]
filter_loader.add_directory(str(REPO / "gpuhost_cli" / "ansible_plugins" / "filter"))

DOCKER_REPO = r"download\.docker\.com/linux/debian"
DOCKER_LINE = "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian bookworm stable\n"

DPKG_STATUS = """\
Package: docker-ce
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 5:27.5.1-1~debian.12~bookworm
Description: Docker: the open-source application container engine
 Package: not-a-package
 Version: 0.0
 .
 A continuation line is no field.

Package: docker-ce-cli
Status: install ok installed
Architecture: amd64
Version: 5:27.5.1-1~debian.12~bookworm

Package: ca-certificates
Status: install ok installed
Architecture: all
Version: 20230311

Package: gnupg
Status: install ok installed
Architecture: all
Version: 2.2.40-1.1

Package: nvidia-container-toolkit
Status: hold ok installed
Architecture: amd64
Version: 1.17.8-1

Package: libnvidia-container1
Status: hold ok installed
Architecture: amd64
Version: 1.17.8-1
Conffiles:
 /etc/foo.conf 0123456789abcdef

Package: libnvidia-container1
Status: install ok installed
Architecture: i386
Version: 1.16.0-1

Package: docker-compose
Status: deinstall ok config-files
Architecture: all
Version: 1.29.2-3

Package: runc
Status: purge ok not-installed
Architecture: amd64
"""

GROUPS = """\
root:x:0:
video:x:44:carol
docker:x:999:bob,alice,
docker:x:1000:mallory
nogroupline
"""


class FakeHost:
    """A host's files under ROOT, and a systemctl that answers from UNITS."""

    def __init__(self, root: Path):
        self.root = root
        self.units = {
            "docker.service": ("active", "enabled"),
            "nvidia-cdi-refresh.path": ("active", "enabled"),
            "nvidia-cdi-refresh.service": ("inactive", "enabled"),
        }
        self.calls: list[list[str]] = []

    def path(self, name: str) -> Path:
        return self.root / name.lstrip("/")

    def write(self, name: str, text: str, mode: int = 0o644) -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        return path

    def run(self, argv):
        self.calls.append(list(argv))
        assert argv[:2] == ["systemctl", "show"] and "--" in argv
        units = argv[argv.index("--") + 1:]
        blocks = []
        for unit in units:
            active, file_state = self.units.get(unit, ("inactive", ""))
            blocks.append(f"Id={unit}\nActiveState={active}\nUnitFileState={file_state}\n")
        return "\n".join(blocks)

    def reader(self) -> hs.HostReader:
        """A fresh reader: one reads dpkg's status, /etc/group and the units once."""
        return hs.HostReader(root=str(self.root), run=self.run)


def build_host(root: Path) -> FakeHost:
    host = FakeHost(root)
    host.write("/etc/docker/daemon.json", '{"default-runtime": "nvidia"}\n')
    os.chmod(host.path("/etc/docker"), 0o755)
    host.write("/etc/ansible/facts.d/gpuhost_docker.fact", '{"engine": "docker-ce"}\n', 0o644)
    host.write("/etc/hostname", "gpu1\n")
    host.path("/dev").mkdir(parents=True)
    os.mkfifo(host.path("/dev/nvidiactl"))
    os.chmod(host.path("/dev/nvidiactl"), 0o666)
    host.write("/var/lib/dpkg/status", DPKG_STATUS)
    host.write("/etc/group", GROUPS)
    host.write("/etc/apt/sources.list", "deb http://deb.debian.org/debian bookworm main\n"
                                        "# deb https://download.docker.com/linux/debian bookworm stable\n")
    host.write("/etc/apt/sources.list.d/docker.list", DOCKER_LINE)
    host.write("/etc/apt/sources.list.d/docker.list.save", DOCKER_LINE)
    host.write("/etc/apt/sources.list.d/debian.sources",
               "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n")
    host.write("/etc/apt/sources.list.d/old-docker.list", "#deb https://download.docker.com/linux/debian bookworm stable\n"
                                                          "   # deb-src https://download.docker.com/linux/debian bookworm stable\n")
    char = host.path("/dev/char")
    char.mkdir(parents=True)
    os.symlink("../nvidia0", char / "195:0")
    os.symlink("../nvidiactl", char / "195:255")
    os.symlink("../null", char / "1:3")
    return host


#: What a role of the fake host manages: every item kind, with and without its options.
ITEMS = [
    {"file": "/etc/docker/daemon.json"},
    {"file": "/etc/ansible/facts.d/gpuhost_docker.fact", "attrs": True},
    {"file": "/etc/docker", "attrs": True},
    {"file": "/dev/nvidiactl"},
    {"file": "/etc/cdi/nvidia.yaml"},
    {"package": ["docker-ce", "docker-ce-cli", "docker.io"]},
    {"package": ["ca-certificates", "gnupg"], "version": False},
    {"package": ["nvidia-container-toolkit", "libnvidia-container1"], "version": True, "hold": True},
    {"group": "docker", "members": ["alice", "bob"]},
    {"unit": "docker.service"},
    {"unit": ["nvidia-cdi-refresh.path"]},
    {"unit": ["nvidia-cdi-refresh.service"], "active": False},
    {"lines": DOCKER_REPO, "paths": ["/etc/apt/sources.list.d", "/etc/apt/sources.list"],
     "exclude": ["/etc/apt/sources.list.d/docker.list"]},
    {"glob": ["/etc/apt/sources.list.d/nvidia-docker.list", "/etc/apt/sources.list.d/libnvidia-container.list"]},
    {"glob": "/snap/docker"},
    {"links": "/dev/char", "target": "nvidia"},
]
OTHER_ITEMS = [{"file": "/etc/hostname"}]
INPUTS = {"docker": "digest-docker", "other": "digest-other"}


@pytest.fixture
def host(tmp_path):
    return build_host(tmp_path / "root")


def record_of(host: FakeHost) -> dict:
    record = hs.recorded({}, "docker", INPUTS["docker"], ITEMS, host.reader())
    return hs.recorded(record, "other", INPUTS["other"], OTHER_ITEMS, host.reader())


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- Item keys ---------------------------------------------------------------------------

@pytest.mark.parametrize("item, key", [
    ({"file": "/etc/docker/daemon.json"}, "file:/etc/docker/daemon.json"),
    ({"file": "/etc/docker", "attrs": True}, "file:/etc/docker"),
    ({"package": "docker-ce"}, "package:docker-ce"),
    ({"package": ["docker-ce", "docker.io"], "version": False, "hold": True}, "package:docker-ce,docker.io"),
    ({"group": "docker", "members": ["alice"]}, "group:docker"),
    ({"unit": "docker.service"}, "unit:docker.service"),
    ({"unit": ["a.path", "a.service"], "active": False}, "unit:a.path,a.service"),
    ({"lines": "x\\.org", "paths": ["/etc/apt/sources.list.d", "/etc/apt/sources.list"]},
     "lines:x\\.org in /etc/apt/sources.list.d,/etc/apt/sources.list"),
    ({"lines": "x", "paths": ["/d"], "exclude": ["/d/a.list", "/d/b.list"]}, "lines:x in /d less /d/a.list,/d/b.list"),
    ({"lines": "x", "paths": ["/d"], "exclude": []}, "lines:x in /d"),
    ({"glob": "/snap/docker"}, "glob:/snap/docker"),
    ({"glob": ["/a/*.yaml", "/b/*.json"]}, "glob:/a/*.yaml,/b/*.json"),
    ({"glob": []}, "glob:"),
    ({"links": "/dev/char", "target": "nvidia"}, "links:/dev/char -> *nvidia*"),
])
def test_item_key_names_each_kind(item, key):
    assert hs.item_key(item) == key


@pytest.mark.parametrize("item", [{}, {"path": "/etc/x"}, {"attrs": True}, "file:/etc/x", ["/etc/x"], None])
def test_an_item_of_no_known_kind_is_refused(item, host):
    with pytest.raises(hs.ItemError) as refused:
        hs.item_key(item)
    assert isinstance(refused.value, ValueError)
    if isinstance(item, dict):
        with pytest.raises(hs.ItemError):
            host.reader().read(item)
        with pytest.raises(hs.ItemError):
            host.reader().read_all([{"file": "/etc/hostname"}, item])


# ---- Reading each kind -------------------------------------------------------------------

def test_a_file_reads_as_its_sha256_and_with_attrs_its_mode_and_owner(host):
    path = host.write("/etc/x.conf", "content\n", 0o640)
    info = os.stat(path)
    assert hs.read_file_state(str(path)) == "sha256=" + sha("content\n")
    assert hs.read_file_state(str(path), attrs=True) == (
        "sha256=%s mode=0640 uid=%d gid=%d" % (sha("content\n"), info.st_uid, info.st_gid))
    reader = host.reader()
    assert reader.read({"file": "/etc/x.conf"}) == "sha256=" + sha("content\n")
    assert reader.read({"file": "/etc/x.conf", "attrs": True}).endswith(" mode=0640 uid=%d gid=%d" % (info.st_uid, info.st_gid))
    assert reader.read({"file": "/etc/missing"}) == hs.ABSENT == "absent"


def test_a_directory_and_special_files_are_never_read(host):
    info = os.stat(host.path("/etc/docker"))
    reader = host.reader()
    assert reader.read({"file": "/etc/docker"}) == "directory"
    assert reader.read({"file": "/etc/docker", "attrs": True}) == "directory mode=0755 uid=%d gid=%d" % (
        info.st_uid, info.st_gid)
    # A FIFO would block an open(): it reads by its type (S_IFIFO) alone.
    assert reader.read({"file": "/dev/nvidiactl"}) == "special type=10000 rdev=0:0"
    assert reader.read({"file": "/dev/nvidiactl", "attrs": True}).startswith("special type=10000 rdev=0:0 mode=0666 ")


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_a_device_node_reads_as_its_numbers():
    # /dev/null is the character device 1:3 on Linux.
    assert hs.read_file_state("/dev/null") == "special type=20000 rdev=1:3"


def test_dpkg_status_parsing():
    packages = hs.parse_dpkg_status(DPKG_STATUS)
    assert packages["docker-ce"] == ("5:27.5.1-1~debian.12~bookworm", "install", "installed")
    assert packages["nvidia-container-toolkit"] == ("1.17.8-1", "hold", "installed")
    # The first stanza of a name wins (amd64 before i386).
    assert packages["libnvidia-container1"] == ("1.17.8-1", "hold", "installed")
    assert packages["docker-compose"] == ("1.29.2-3", "deinstall", "config-files")
    assert packages["runc"] == ("", "purge", "not-installed")
    # Continuation lines of a description or of Conffiles are no fields.
    assert "not-a-package" not in packages and "/etc/foo.conf 0123456789abcdef" not in packages
    assert set(packages) == {"docker-ce", "docker-ce-cli", "ca-certificates", "gnupg", "nvidia-container-toolkit",
                             "libnvidia-container1", "docker-compose", "runc"}
    assert hs.parse_dpkg_status("") == {}


@pytest.mark.parametrize("entry, version, hold, state", [
    (("1.0", "install", "installed"), True, False, "installed version=1.0"),
    (("1.0", "hold", "installed"), True, True, "installed version=1.0 want=hold"),
    (("1.0", "hold", "installed"), False, True, "installed want=hold"),
    (("1.0", "hold", "installed"), False, False, "installed"),
    (("1.0", "deinstall", "config-files"), True, False, "config-files version=1.0"),
    (("1.0", "install", "half-configured"), False, False, "half-configured"),
    (("", "purge", "not-installed"), True, True, "absent"),
    (("", "", ""), True, False, "absent"),
    (None, True, True, "absent"),
])
def test_package_state(entry, version, hold, state):
    assert hs.package_state(entry, version, hold) == state


def test_package_items_read_each_name_with_its_options(host):
    reader = host.reader()
    assert reader.read({"package": "docker-ce"}) == "docker-ce installed version=5:27.5.1-1~debian.12~bookworm"
    assert reader.read({"package": ["docker-ce", "docker.io", "runc"], "version": False}) == (
        "docker-ce installed; docker.io absent; runc absent")
    assert reader.read({"package": ["nvidia-container-toolkit"], "hold": True}) == (
        "nvidia-container-toolkit installed version=1.17.8-1 want=hold")
    assert reader.read({"package": "docker-compose", "version": False}) == "docker-compose config-files"


def test_groups_parsing_and_wanted_members():
    groups = hs.parse_groups(GROUPS)
    # The first line of a name wins; empty members are dropped; a line without four fields is skipped.
    assert groups == {"root": set(), "video": {"carol"}, "docker": {"alice", "bob"}}
    assert hs.group_state(groups["docker"], ["bob", "alice", "dave"]) == "present bob=in alice=in dave=out"
    assert hs.group_state(groups["root"], []) == "present"
    assert hs.group_state(None, ["alice"]) == "absent"


def test_group_items(host):
    reader = host.reader()
    assert reader.read({"group": "docker", "members": ["alice", "bob"]}) == "present alice=in bob=in"
    assert reader.read({"group": "docker"}) == "present"
    assert reader.read({"group": "docker", "members": "carol"}) == "present carol=out"
    assert reader.read({"group": "podman", "members": ["alice"]}) == "absent"


def test_systemctl_show_parsing():
    text = ("Id=docker.service\nActiveState=active\nUnitFileState=enabled\n\n"
            "Id=nope.service\nActiveState=inactive\nUnitFileState=\n")
    assert hs.parse_systemctl_show(text, ["docker.service", "nope.service"]) == {
        "docker.service": ("active", "enabled"), "nope.service": ("inactive", "")}
    # Fewer blocks than units: the units without one are left out.
    assert hs.parse_systemctl_show(text, ["a", "b", "c"]) == {"a": ("active", "enabled"), "b": ("inactive", "")}
    assert hs.parse_systemctl_show("", ["a"]) == {}
    assert hs.parse_systemctl_show("\n\n", ["a"]) == {}


def test_units_are_read_with_one_systemctl_show(host):
    items = [{"unit": "docker.service"}, {"unit": ["nvidia-cdi-refresh.path", "docker.service"]},
             {"unit": ["nvidia-cdi-refresh.service"], "active": False}, {"file": "/etc/hostname"}]
    state = host.reader().read_all(items)
    assert host.calls == [["systemctl", "show", "-p", "Id", "-p", "ActiveState", "-p", "UnitFileState", "--",
                           "docker.service", "nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"]]
    assert state == {
        "unit:docker.service": "docker.service active=active file=enabled",
        "unit:nvidia-cdi-refresh.path,docker.service":
            "nvidia-cdi-refresh.path active=active file=enabled; docker.service active=active file=enabled",
        "unit:nvidia-cdi-refresh.service": "nvidia-cdi-refresh.service file=enabled",
        "file:/etc/hostname": "sha256=" + sha("gpu1\n"),
    }


def test_a_systemctl_that_answers_nothing_reads_as_unknown(host):
    reader = hs.HostReader(root=str(host.root), run=lambda argv: "")
    assert reader.read({"unit": ["docker.service", "x.service"]}) == (
        "docker.service active=unknown file=unknown; x.service active=unknown file=unknown")
    reader = hs.HostReader(root=str(host.root), run=lambda argv: None)
    assert reader.read({"unit": "docker.service", "active": False}) == "docker.service file=unknown"


def test_apt_sources_that_name_the_repository(host):
    d = host.path("/etc/apt/sources.list.d")
    main = host.path("/etc/apt/sources.list")
    # The own file is excluded; the .save file is no source; commented-out lines do not count.
    assert hs.source_files_naming(DOCKER_REPO, [str(d), str(main)], [str(d / "docker.list")]) == []
    assert hs.source_files_naming(DOCKER_REPO, [str(d), str(main)]) == [str(d / "docker.list")]
    host.write("/etc/apt/sources.list.d/z-mirror.list", "deb-src https://download.docker.com/linux/debian bookworm stable\n")
    host.write("/etc/apt/sources.list.d/docker.sources",
               "Types: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\n")
    host.write("/etc/apt/sources.list", "deb [trusted=yes] https://download.docker.com/linux/debian bookworm stable\n")
    host.write("/etc/apt/sources.list.d/other.list", "deb https://download.docker.com/linux/ubuntu noble stable\n")
    host.write("/etc/apt/sources.list.d/text.list", "see https://download.docker.com/linux/debian\n")
    assert hs.source_files_naming(DOCKER_REPO, [str(d), str(main), str(host.path("/etc/apt/nowhere"))],
                                  [str(d / "docker.list")]) == sorted(
        [str(d / "docker.sources"), str(d / "z-mirror.list"), str(main)])
    item = {"lines": DOCKER_REPO, "paths": ["/etc/apt/sources.list.d", "/etc/apt/sources.list"],
            "exclude": ["/etc/apt/sources.list.d/docker.list", "/etc/apt/sources.list.d/docker.sources"]}
    assert host.reader().read(item) == " ".join(sorted([str(main), str(d / "z-mirror.list")]))
    assert host.reader().read({"lines": "nowhere\\.example", "paths": ["/etc/apt/sources.list.d"]}) == "none"


def test_globs_as_text_and_as_a_list(host):
    host.write("/etc/cdi/nvidia.yaml", "x")
    host.write("/etc/cdi/other.json", "x")
    host.write("/var/run/cdi/nvidia.json", "x")
    reader = host.reader()
    assert reader.read({"glob": "/etc/cdi/*.yaml"}) == str(host.path("/etc/cdi/nvidia.yaml"))
    assert reader.read({"glob": ["/var/run/cdi/*.json", "/etc/cdi/*.yaml", "/etc/cdi/*.json", "/etc/cdi/*"]}) == " ".join(
        sorted(str(host.path(p)) for p in ("/etc/cdi/nvidia.yaml", "/etc/cdi/other.json", "/var/run/cdi/nvidia.json")))
    assert reader.read({"glob": "/snap/docker"}) == "none"
    assert reader.read({"glob": []}) == "none"


def test_links_whose_target_names_the_text(host):
    reader = host.reader()
    assert reader.read({"links": "/dev/char", "target": "nvidia"}) == "195:0 195:255"
    assert reader.read({"links": "/dev/char", "target": "null"}) == "1:3"
    assert reader.read({"links": "/dev/char", "target": "nvidia-uvm"}) == "none"
    assert reader.read({"links": "/dev/nowhere", "target": "nvidia"}) == "none"
    # A regular file that names the text is no link.
    host.write("/dev/char/nvidia-file", "nvidia")
    assert host.reader().read({"links": "/dev/char", "target": "nvidia"}) == "195:0 195:255"


def test_a_root_of_slash_reads_paths_as_given(tmp_path):
    path = tmp_path / "f"
    path.write_text("a")
    assert hs.HostReader().read({"file": str(path)}) == "sha256=" + sha("a")


# ---- Comparing ---------------------------------------------------------------------------

def test_a_converged_host_has_nothing_to_do(host):
    record = record_of(host)
    assert hs.plan(record, INPUTS, host.reader()) == {"docker": [], "other": []}
    assert hs.drift_of(record["roles"]["docker"], INPUTS["docker"], host.reader()) == []


def test_no_record_means_work(host):
    reader = host.reader()
    assert hs.plan({}, INPUTS, reader) == {role: ["no record of a converged run"] for role in INPUTS}
    assert hs.plan([], {"docker": "d"}, reader) == {"docker": ["no record of a converged run"]}
    assert hs.drift_of(None, "d", reader) == ["no record of a converged run"]
    assert hs.drift_of({"inputs": "d"}, "d", reader) == ["no record of a converged run"]
    # A role the record does not hold runs; the others keep their records.
    assert hs.plan(record_of(host), {"docker": INPUTS["docker"], "docker_users": "x"}, reader) == {
        "docker": [], "docker_users": ["no record of a converged run"]}


def test_a_record_of_another_version_counts_as_none(host):
    record = record_of(host)
    record["version"] = hs.RECORD_VERSION + 1
    assert hs.plan(record, INPUTS, host.reader()) == {role: ["no record of a converged run"] for role in INPUTS}


def test_other_inputs_mean_work(host):
    record = record_of(host)
    drift = hs.plan(record, {"docker": "another-digest", "other": INPUTS["other"]}, host.reader())
    assert drift["other"] == []
    assert drift["docker"] == ["its inputs changed (variables, facts or gpuhost's code) since the last converged run"]
    # The digest of a role whose inputs could not be rendered never matches.
    assert hs.plan(record, {"docker": hs.UNRENDERED}, host.reader())["docker"] != []


def test_a_record_without_items_or_with_an_unknown_kind(host):
    reader = host.reader()
    assert hs.drift_of({"inputs": "d", "items": {}}, "d", reader) == ["the record lists no items"]
    drift = hs.drift_of({"inputs": "d", "items": {"x": "y"}, "items_spec": [{"nothing": 1}]}, "d", reader)
    assert len(drift) == 1 and drift[0].startswith("the record is unreadable: ") and "nothing" in drift[0]
    # A role that manages no items (gpuhost_verify's record) is converged while its inputs hold.
    assert hs.drift_of({"inputs": "d", "items": {}, "items_spec": []}, "d", reader) == []


def test_at_most_ten_lines_of_drift(host):
    names = [f"/etc/many/{i:02d}" for i in range(13)]
    for name in names:
        host.write(name, "before")
    items = [{"file": name} for name in names]
    record = hs.recorded({}, "many", "d", items, host.reader())
    for name in names:
        host.write(name, "after")
    drift = hs.plan(record, {"many": "d"}, host.reader())["many"]
    assert len(drift) == 11 and drift[-1] == "and 3 more"
    assert drift[0] == f"file:/etc/many/00: sha256={sha('after')}, was sha256={sha('before')}"


def test_describe_change_names_only_the_changed_packages_and_units():
    was = "docker-ce installed version=1; docker-ce-cli installed version=1; docker.io absent"
    now = "docker-ce installed version=2; docker-ce-cli installed version=1; docker.io absent"
    key = "package:docker-ce,docker-ce-cli,docker.io"
    assert hs.describe_change(key, now, was) == ["package docker-ce: installed version=2, was installed version=1"]
    now2 = "docker-ce absent; docker-ce-cli installed version=1; docker.io installed version=3"
    assert hs.describe_change(key, now2, was) == [
        "package docker-ce: absent, was installed version=1",
        "package docker.io: installed version=3, was absent"]
    assert hs.describe_change("unit:a.service,b.service", "a.service active=failed file=enabled; b.service file=enabled",
                              "a.service active=active file=enabled; b.service file=enabled") == [
        "unit a.service: active=failed file=enabled, was active=active file=enabled"]
    # Other kinds, or lists whose names differ, are one line with the whole state.
    assert hs.describe_change("file:/etc/x", "absent", "sha256=00") == ["file:/etc/x: absent, was sha256=00"]
    assert hs.describe_change("package:a,b", "a installed; c installed", "a installed; b installed") == [
        "package:a,b: a installed; c installed, was a installed; b installed"]
    assert hs.describe_change("package:a", None, "a installed") == ["package:a: None, was a installed"]


def test_recorded_round_trip(host, tmp_path):
    record = record_of(host)
    assert record["version"] == hs.RECORD_VERSION
    assert set(record["roles"]) == {"docker", "other"}
    entry = record["roles"]["docker"]
    assert entry["inputs"] == INPUTS["docker"] and entry["items_spec"] == ITEMS
    assert set(entry["items"]) == {hs.item_key(item) for item in ITEMS}
    assert entry["items"]["group:docker"] == "present alice=in bob=in"
    assert entry["items"]["file:/etc/cdi/nvidia.yaml"] == "absent"
    path = tmp_path / "converged.json"
    path.write_bytes(hs.dump_record(record))
    assert hs.dump_record(record).endswith(b"\n")
    loaded = hs.load_record(str(path))
    assert loaded == record
    assert hs.plan(loaded, INPUTS, host.reader()) == {"docker": [], "other": []}
    # Recording one role again replaces its entry and keeps the others.
    again = hs.recorded(loaded, "other", "new-digest", [], host.reader())
    assert again["roles"]["docker"] == record["roles"]["docker"]
    assert again["roles"]["other"] == {"inputs": "new-digest", "items_spec": [], "items": {}}
    # A record of another version is not built on.
    assert set(hs.recorded({"version": 99, "roles": {"x": {}}}, "other", "d", [], host.reader())["roles"]) == {"other"}
    assert set(hs.recorded(["garbage"], "other", "d", [], host.reader())["roles"]) == {"other"}


@pytest.mark.parametrize("content", [None, "", "{not json", "\xff\xfe"])
def test_load_record_of_a_missing_or_garbled_file_is_empty(tmp_path, content):
    path = tmp_path / "converged.json"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    assert hs.load_record(str(path)) == {}
    assert hs.load_record(str(tmp_path)) == {}  # a directory


# ---- Every kind of change, made and undone -----------------------------------------------

def _restore_text(host, name):
    path = host.path(name)
    text = path.read_text()
    mode = os.stat(path).st_mode & 0o7777

    def undo():
        path.write_text(text)
        os.chmod(path, mode)
    return undo


def _edit(name, *replacements):
    """Replace, in file NAME, each (OLD, NEW) of REPLACEMENTS once."""
    def perturb(host):
        undo = _restore_text(host, name)
        path = host.path(name)
        text = path.read_text()
        for old, new in zip(replacements[::2], replacements[1::2]):
            assert old in text, (name, old)
            text = text.replace(old, new, 1)
        path.write_text(text)
        return undo
    return perturb


def _chmod(name, mode):
    def perturb(host):
        path = host.path(name)
        before = os.stat(path).st_mode & 0o7777
        os.chmod(path, mode)
        return lambda: os.chmod(path, before)
    return perturb


def _create(name, text="x\n"):
    def perturb(host):
        path = host.write(name, text)
        return path.unlink
    return perturb


def _remove(name):
    def perturb(host):
        undo = _restore_text(host, name)
        host.path(name).unlink()
        return undo
    return perturb


def _unit(name, active=None, file_state=None):
    def perturb(host):
        before = host.units[name]
        host.units[name] = (active or before[0], file_state or before[1])
        return lambda: host.units.__setitem__(name, before)
    return perturb


def _fifo_becomes_a_file(host):
    path = host.path("/dev/nvidiactl")
    path.unlink()
    path.write_text("")

    def undo():
        path.unlink()
        os.mkfifo(path)
        os.chmod(path, 0o666)
    return undo


def _make_dir(name):
    def perturb(host):
        path = host.path(name)
        path.mkdir(parents=True)
        return path.rmdir
    return perturb


def _link(name, target):
    def perturb(host):
        path = host.path(name)
        os.symlink(target, path)
        return path.unlink
    return perturb


def _unlink_link(name):
    def perturb(host):
        path = host.path(name)
        target = os.readlink(path)
        path.unlink()
        return lambda: os.symlink(target, path)
    return perturb


# (what changes, the change, whether the role enforces it, what a drift line names)
PERTURBATIONS = [
    ("file content", _edit("/etc/docker/daemon.json", "nvidia", "runc"), True, "file:/etc/docker/daemon.json: sha256="),
    ("file removed", _remove("/etc/docker/daemon.json"), True, "file:/etc/docker/daemon.json: absent, was sha256="),
    ("file appears", _create("/etc/cdi/nvidia.yaml"), True, "file:/etc/cdi/nvidia.yaml: sha256="),
    ("mode of a file recorded with attrs", _chmod("/etc/ansible/facts.d/gpuhost_docker.fact", 0o600), True,
     "file:/etc/ansible/facts.d/gpuhost_docker.fact: sha256="),
    ("mode of a file recorded without attrs", _chmod("/etc/docker/daemon.json", 0o600), False, None),
    ("mode of a directory", _chmod("/etc/docker", 0o700), True, "file:/etc/docker: directory mode=0700"),
    ("a device node replaced by a file", _fifo_becomes_a_file, True, "file:/dev/nvidiactl: sha256="),
    ("a package upgraded", _edit("/var/lib/dpkg/status", "Version: 5:27.5.1-1~debian.12~bookworm",
                                 "Version: 5:28.0.0-1~debian.12~bookworm"), True,
     "package docker-ce: installed version=5:28.0.0-1~debian.12~bookworm, was installed version=5:27.5.1"),
    ("a package removed", _edit("/var/lib/dpkg/status", "Package: docker-ce-cli\nStatus: install ok installed",
                                "Package: docker-ce-cli\nStatus: deinstall ok config-files"), True,
     "package docker-ce-cli: config-files version="),
    ("a package installed", _edit("/var/lib/dpkg/status", "Package: runc\n",
                                  "Package: docker.io\nStatus: install ok installed\nVersion: 26.1\n\nPackage: runc\n"),
     True, "package docker.io: installed version=26.1, was absent"),
    ("the version of a package recorded without it", _edit("/var/lib/dpkg/status", "Version: 20230311",
                                                           "Version: 20240203"), False, None),
    ("a hold released", _edit("/var/lib/dpkg/status", "Package: nvidia-container-toolkit\nStatus: hold ok installed",
                              "Package: nvidia-container-toolkit\nStatus: install ok installed"), True,
     "package nvidia-container-toolkit: installed version=1.17.8-1 want=install, was installed version=1.17.8-1 want=hold"),
    ("a hold on a package recorded without holds", _edit("/var/lib/dpkg/status",
                                                         "Package: docker-ce\nStatus: install ok installed",
                                                         "Package: docker-ce\nStatus: hold ok installed"), False, None),
    ("a member left the group", _edit("/etc/group", "docker:x:999:bob,alice,", "docker:x:999:bob"), True,
     "group:docker: present alice=out bob=in, was present alice=in bob=in"),
    ("another member joined the group", _edit("/etc/group", "docker:x:999:bob,alice,", "docker:x:999:bob,alice,eve"),
     False, None),
    ("the group's gid changed", _edit("/etc/group", "docker:x:999:", "docker:x:998:"), False, None),
    ("the group removed", _edit("/etc/group", "docker:x:999:bob,alice,\n", "", "docker:x:1000:mallory\n", ""), True,
     "group:docker: absent, was present alice=in bob=in"),
    ("a unit stopped", _unit("docker.service", active="inactive"), True,
     "unit docker.service: active=inactive file=enabled, was active=active file=enabled"),
    ("a unit disabled", _unit("nvidia-cdi-refresh.path", file_state="disabled"), True,
     "unit nvidia-cdi-refresh.path: active=active file=disabled, was active=active file=enabled"),
    ("a unit masked whose activity is not recorded", _unit("nvidia-cdi-refresh.service", file_state="masked"), True,
     "unit nvidia-cdi-refresh.service: file=masked, was file=enabled"),
    ("the activity of a unit recorded without it", _unit("nvidia-cdi-refresh.service", active="failed"), False, None),
    ("a second source names the repository", _create("/etc/apt/sources.list.d/docker-ce.list", DOCKER_LINE), True,
     "lines:" + DOCKER_REPO + " in /etc/apt/sources.list.d,/etc/apt/sources.list less "
     "/etc/apt/sources.list.d/docker.list: "),
    ("a deb822 source names the repository", _create(
        "/etc/apt/sources.list.d/docker.sources",
        "Types: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\n"), True, "docker.sources, was none"),
    ("a commented-out line comes back", _edit("/etc/apt/sources.list", "# deb https://download", "deb https://download"),
     True, "sources.list, was none"),
    ("the own source file changed", _edit("/etc/apt/sources.list.d/docker.list", "bookworm", "trixie"), False, None),
    ("a source apt does not read", _create("/etc/apt/sources.list.d/docker.list.distUpgrade", DOCKER_LINE), False, None),
    ("a source of another repository", _create("/etc/apt/sources.list.d/gh.list",
                                               "deb https://cli.github.com/packages stable main\n"), False, None),
    ("a stale source file appears", _create("/etc/apt/sources.list.d/nvidia-docker.list"), True,
     "glob:/etc/apt/sources.list.d/nvidia-docker.list,/etc/apt/sources.list.d/libnvidia-container.list: "),
    ("a snap directory appears", _make_dir("/snap/docker"), True, "glob:/snap/docker: "),
    ("a link to an NVIDIA device added", _link("/dev/char/195:254", "../nvidia-modeset"), True,
     "links:/dev/char -> *nvidia*: 195:0 195:254 195:255, was 195:0 195:255"),
    ("a link to an NVIDIA device removed", _unlink_link("/dev/char/195:0"), True,
     "links:/dev/char -> *nvidia*: 195:255, was 195:0 195:255"),
    ("a link to another device added", _link("/dev/char/1:5", "../zero"), False, None),
]


@pytest.mark.parametrize("perturb, enforced, words", [p[1:] for p in PERTURBATIONS], ids=[p[0] for p in PERTURBATIONS])
def test_every_change_a_role_enforces_makes_it_drift_and_undoing_it_does_not(host, perturb, enforced, words):
    record = record_of(host)
    assert hs.plan(record, INPUTS, host.reader()) == {"docker": [], "other": []}
    undo = perturb(host)
    drift = hs.plan(record, INPUTS, host.reader())
    assert drift["other"] == []
    if enforced:
        assert drift["docker"], "the change went unnoticed"
        assert any(line.startswith(words) or words in line for line in drift["docker"]), drift["docker"]
        # One change, one line: the items that did not change are not named.
        assert len(drift["docker"]) == 1, drift["docker"]
    else:
        assert drift["docker"] == []
    undo()
    assert hs.plan(record, INPUTS, host.reader()) == {"docker": [], "other": []}


def test_the_perturbations_cover_every_item_kind():
    kinds = {hs.item_key(item).split(":", 1)[0] for item in ITEMS}
    assert kinds == {"file", "package", "group", "unit", "lines", "glob", "links"}
    # Each kind has a change its role enforces (a drift line starts "KIND:" or "KIND NAME:").
    for kind in kinds:
        assert any(enforced and re.match(r"%s[: ]" % kind, words) for _, _, enforced, words in PERTURBATIONS), kind


# ---- The module --------------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    conf = tmp_path / "etc" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("one\n")
    return {"record": tmp_path / "state" / "converged.json", "conf": conf,
            "items": [{"file": str(conf), "attrs": True}, {"glob": str(tmp_path / "etc" / "*.stale")}]}


def module_args(files, **args):
    return {"path": str(files["record"]), **args}


def test_module_records_and_plans(files):
    items = files["items"]
    result = run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1", items=items))
    assert result["changed"] is True
    assert result["items"] == {f"file:{files['conf']}": hs.read_file_state(str(files["conf"]), True),
                               f"glob:{files['conf'].parent}/*.stale": "none"}
    saved = json.loads(files["record"].read_text())
    assert saved["roles"]["docker"]["inputs"] == "d1" and saved["version"] == hs.RECORD_VERSION
    assert os.stat(files["record"]).st_mode & 0o777 == 0o644
    # The same state again changes nothing.
    assert run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1",
                                                    items=items))["changed"] is False

    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"docker": "d1", "docker_users": "d2"}))
    assert plan["changed"] is False
    assert plan["needs_work"] == ["docker_users"] and plan["converged"] == ["docker"]
    assert plan["drift"] == {"docker_users": ["no record of a converged run"]}

    files["conf"].write_text("two\n")
    (files["conf"].parent / "old.stale").write_text("")
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"docker": "d1"}))
    assert plan["needs_work"] == ["docker"] and plan["converged"] == []
    assert [line.split(":", 1)[0] for line in plan["drift"]["docker"]] == ["file", "glob"]
    assert str(files["conf"]) in plan["drift"]["docker"][0]

    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"docker": "d0"}))
    assert plan["drift"]["docker"] == ["its inputs changed (variables, facts or gpuhost's code) since the last converged run"]


def test_plan_forgets_the_verification_of_a_host_whose_roles_have_work(files):
    run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1", items=files["items"]))
    run_main(host_state_module, module_args(files, mode="record", role="gpuhost_verify", inputs="v1", items=[]))
    both = {"docker": "d1", "gpuhost_verify": "v1"}
    # Nothing to do: the verification stays.
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs=both, forget=["gpuhost_verify"]))
    assert plan["needs_work"] == []
    assert "gpuhost_verify" in json.loads(files["record"].read_text())["roles"]
    # The docker role has work: the verification is forgotten, so the host is checked again
    # after its roles ran, even when a run in between stops before the checks.
    files["conf"].write_text("changed\n")
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs=both, forget=["gpuhost_verify"]))
    assert plan["needs_work"] == ["docker"]
    assert set(json.loads(files["record"].read_text())["roles"]) == {"docker"}
    files["conf"].write_text("one\n")
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs=both, forget=["gpuhost_verify"]))
    assert plan["needs_work"] == ["gpuhost_verify"]


def test_plan_runs_the_roles_after_one_with_work_that_can_change_what_they_read(files):
    for role in ("nvidia_container_toolkit", "docker", "docker_users", "docker_daemon"):
        run_main(host_state_module, module_args(files, mode="record", role=role, inputs=role, items=[]))
    inputs = {role: role for role in ("nvidia_container_toolkit", "docker", "docker_users", "docker_daemon")}
    dependents = {"nvidia_container_toolkit": ["docker_daemon"], "docker": ["docker_users", "docker_daemon"]}
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs=inputs, dependents=dependents))
    assert plan["needs_work"] == []
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={**inputs, "nvidia_container_toolkit": "new"},
                                                    dependents=dependents))
    assert plan["needs_work"] == ["nvidia_container_toolkit", "docker_daemon"]
    assert plan["drift"]["docker_daemon"] == ["runs after nvidia_container_toolkit, whose work can change what it reads"]
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={**inputs, "docker": "new"},
                                                    dependents=dependents))
    assert plan["needs_work"] == ["docker", "docker_users", "docker_daemon"]
    # A role's own drift is kept as the reason; a later role's work runs nothing before it.
    plan = run_main(host_state_module, module_args(files, mode="plan",
                                                    inputs={**inputs, "docker": "new", "docker_daemon": "new"},
                                                    dependents=dependents))
    assert plan["drift"]["docker_daemon"][0].startswith("its inputs changed")
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={**inputs, "docker_daemon": "new"},
                                                    dependents=dependents))
    assert plan["needs_work"] == ["docker_daemon"]


def test_plan_forgets_nothing_in_check_mode(files):
    run_main(host_state_module, module_args(files, mode="record", role="gpuhost_verify", inputs="v1", items=[]))
    before = files["record"].read_bytes()
    plan = run_main(host_state_module, {**module_args(files, mode="plan", inputs={"docker": "d1", "gpuhost_verify": "v1"},
                                                      forget=["gpuhost_verify"]), "_ansible_check_mode": True})
    assert plan["needs_work"] == ["docker"]
    assert files["record"].read_bytes() == before


def test_module_never_records_an_unrendered_digest(files):
    result = run_main(host_state_module, module_args(files, mode="record", role="docker", inputs=hs.UNRENDERED,
                                                      items=files["items"]))
    assert result["changed"] is False and "not recorded" in result["msg"]
    assert not files["record"].exists()
    # Nor does it replace an earlier record with it.
    run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1", items=files["items"]))
    before = files["record"].read_bytes()
    run_main(host_state_module, module_args(files, mode="record", role="docker", inputs=hs.UNRENDERED, items=[]))
    assert files["record"].read_bytes() == before
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"docker": hs.UNRENDERED}))
    assert plan["needs_work"] == ["docker"]


def test_module_records_nothing_in_check_mode(files):
    result = run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1",
                                                      items=files["items"]), check_mode=True)
    assert result["changed"] is True
    assert not files["record"].exists() and not files["record"].parent.exists()
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"docker": "d1"}), check_mode=True)
    assert plan["needs_work"] == ["docker"]


def test_module_records_a_role_without_items(files):
    # playbooks/provision.yml records the passed checks (gpuhost_verify) with no items.
    result = run_main(host_state_module, module_args(files, mode="record", role="gpuhost_verify", inputs="v1",
                                                      items=[]))
    assert result["changed"] is True and result["items"] == {}
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"gpuhost_verify": "v1"}))
    assert plan["converged"] == ["gpuhost_verify"] and plan["needs_work"] == []


def test_module_refuses_bad_arguments(files):
    with pytest.raises(ModuleFail, match="inputs must map role names to digests"):
        run_main(host_state_module, module_args(files, mode="plan", inputs="d1"))
    with pytest.raises(ModuleFail, match="names no known kind"):
        run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1",
                                                items=[{"path": "/etc/x"}]))
    with pytest.raises(ModuleFail, match="role"):
        run_main(host_state_module, module_args(files, mode="record", inputs="d1"))
    assert not files["record"].exists()


def test_module_replaces_a_garbled_record(files):
    files["record"].parent.mkdir()
    files["record"].write_text("{garbage")
    plan = run_main(host_state_module, module_args(files, mode="plan", inputs={"docker": "d1"}))
    assert plan["drift"] == {"docker": ["no record of a converged run"]}
    result = run_main(host_state_module, module_args(files, mode="record", role="docker", inputs="d1",
                                                      items=files["items"]))
    assert result["changed"] is True
    assert hs.load_record(str(files["record"]))["roles"]["docker"]["inputs"] == "d1"


def test_module_documentation_parses_and_lists_its_options():
    doc = yaml.safe_load(host_state_module.DOCUMENTATION)
    assert doc["module"] == "gpuhost_host_state"
    assert set(doc["options"]) == {"mode", "path", "inputs", "role", "items", "forget", "dependents"}
    assert doc["options"]["mode"]["choices"] == ["plan", "record"]
    assert set(yaml.safe_load(host_state_module.RETURN)) == {"needs_work", "converged", "drift"}
    example = yaml.safe_load(host_state_module.EXAMPLES)[0]["gpuhost_host_state"]
    # The action plugin of the same name needs both to compute the digests.
    assert example["mode"] == "plan" and example["roles"] and example["roles_dir"]


# ---- The roles' items, rendered as a play renders them -----------------------------------
# Each role that the plan covers lists what it manages in vars/main.yml as
# __<role>_state_items; the docker and nvidia_container_toolkit roles add the items of
# their apt source, which the apt_source role (imported with the vars of its import task)
# notes in __apt_source_state_items_by_file.


RELEASE_FACTS = {
    "debian12": {"distribution": "Debian", "distribution_release": "bookworm", "distribution_version": "12.7",
                 "distribution_major_version": "12", "os_family": "Debian", "architecture": "x86_64"},
    "ubuntu2404": {"distribution": "Ubuntu", "distribution_release": "noble", "distribution_version": "24.04",
                   "distribution_major_version": "24", "os_family": "Debian", "architecture": "x86_64"},
}
STATE_ROLES = ["apt_source", "docker", "docker_daemon", "docker_users", "nvidia_container_toolkit"]


def _trusted(data):
    if isinstance(data, dict):
        return {k: _trusted(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_trusted(v) for v in data]
    return trust_as_template(data) if isinstance(data, str) else data


def _load(loader, name):
    path = REPO / name
    return _trusted(loader.load_from_file(str(path)) or {}) if path.exists() else {}


def apt_source_import_vars(role):
    """The vars of ROLE's task that imports apt_source (tasks/main.yml)."""
    for task in yaml.safe_load((REPO / f"roles/{role}/tasks/main.yml").read_text()):
        spec = task.get("ansible.builtin.import_role") or task.get("ansible.builtin.include_role") or {}
        if spec.get("name") == "apt_source":
            return task["vars"]
    return None


def role_state_items(role, release, **overrides):
    """ROLE's __<role>_state_items for a host of RELEASE, with OVERRIDES as inventory values."""
    loader = DataLoader()
    facts = RELEASE_FACTS[release]
    variables = {}
    for name in (f"roles/{role}/defaults/main.yml", f"roles/{role}/vars/main.yml",
                 f"roles/{role}/vars/{facts['distribution']}.yml"):
        variables.update(_load(loader, name))
    variables.update(overrides)
    variables["ansible_facts"] = dict(facts)
    imported = apt_source_import_vars(role)
    if imported is not None:
        # As apt_source's set_fact runs: its defaults and vars, under the import's vars.
        scope = dict(variables)
        scope.update(_load(loader, "roles/apt_source/defaults/main.yml"))
        scope.update(_load(loader, "roles/apt_source/vars/main.yml"))
        scope.update(_trusted(imported))
        scope.update(overrides)
        templar = Templar(loader=loader, variables=scope)
        source_file = templar.template(trust_as_template("{{ apt_source_file }}"))
        variables["__apt_source_state_items_by_file"] = {
            source_file: templar.template(trust_as_template("{{ __apt_source_state_items }}"))}
    templar = Templar(loader=loader, variables=variables)
    return templar.template(trust_as_template("{{ __%s_state_items }}" % role))


APT_SOURCE_VARS = {
    "apt_source_file": "/etc/apt/sources.list.d/example.list",
    "apt_source_keyring": "/etc/apt/keyrings/example.gpg",
    "apt_source_repo_url": "https://packages.example.com/apt/",
    "apt_source_key_url": "https://packages.example.com/apt/key.gpg",
    "apt_source_key_fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
    "apt_source_lines": ["deb [signed-by=/etc/apt/keyrings/example.gpg] https://packages.example.com/apt stable main"],
}

CASES = [
    pytest.param(role, release, overrides, id=f"{role}-{release}-{label}")
    for release in RELEASE_FACTS
    for role, label, overrides in [
        ("apt_source", "present", {**APT_SOURCE_VARS, "apt_source_stale_files": ["old.list", "/etc/apt/x.list"]}),
        ("apt_source", "absent", {**APT_SOURCE_VARS, "apt_source_state": "absent"}),
        ("docker", "upstream", {}),
        ("docker", "upstream-pinned", {"docker_version": "5:27.5.1-1"}),
        ("docker", "distro", {"docker_install_source": "distro"}),
        ("docker_daemon", "defaults", {}),
        ("docker_daemon", "registry-ca", {"docker_daemon_registry_ca_certs": [
            {"registry": "mirror.example.com:5000", "cert": "-----BEGIN CERTIFICATE-----"}]}),
        ("docker_users", "users", {"docker_users": ["alice", "bob"]}),
        ("nvidia_container_toolkit", "defaults", {}),
        ("nvidia_container_toolkit", "pinned", {"nvidia_container_toolkit_version": "1.17.8-1",
                                                "nvidia_container_toolkit_legacy_nvidia_docker2": True}),
    ]
]


def _packages(items):
    return [name for item in items if "package" in item for name in hs._patterns(item["package"])]


def _item(items, kind, value=None):
    found = [item for item in items if kind in item and (value is None or item[kind] == value)]
    assert len(found) == 1, (kind, value, items)
    return found[0]


def test_every_role_the_plan_covers_lists_and_records_its_items():
    for role in STATE_ROLES:
        assert f"__{role}_state_items" in yaml.safe_load((REPO / f"roles/{role}/vars/main.yml").read_text()), role
    for role in STATE_ROLES[1:]:
        records = [task["gpuhost_host_state"] for task in yaml.safe_load((REPO / f"roles/{role}/tasks/main.yml").read_text())
                   if "gpuhost_host_state" in task]
        assert records == [{"mode": "record", "role": role, "inputs": "{{ __gpuhost_plan.inputs.%s }}" % role,
                            "items": "{{ __%s_state_items }}" % role}], role


@pytest.mark.parametrize("role, release, overrides", CASES)
def test_each_role_renders_items_the_host_side_reads(role, release, overrides, tmp_path):
    items = role_state_items(role, release, **overrides)
    assert isinstance(items, list) and items
    assert all(isinstance(item, dict) for item in items)
    keys = [hs.item_key(item) for item in items]
    # Two items of one key would leave one of them unrecorded.
    assert len(keys) == len(set(keys)), keys
    # Every option is of the kind it names, and no value is left unrendered.
    text = json.dumps(items)
    assert "{{" not in text and "{%" not in text
    for item in items:
        for name in ("attrs", "version", "hold", "active"):
            if name in item:
                assert isinstance(item[name], bool), (name, item)
        if "file" in item:
            assert item["file"].startswith("/")
    # The host side reads them all, from a bare host too.
    host = FakeHost(tmp_path)
    state = host.reader().read_all(items)
    assert set(state) == set(keys)
    assert hs.plan(hs.recorded({}, role, "d", items, host.reader()), {role: "d"}, host.reader()) == {role: []}


def test_docker_daemon_items_record_each_registry_ca_it_writes():
    items = role_state_items("docker_daemon", "debian12", docker_daemon_registry_ca_certs=[
        {"registry": "mirror.example.com:5000", "cert": "x"}, {"registry": "10.0.0.5", "cert": "y"}])
    assert _item(items, "file", "/etc/docker/certs.d/mirror.example.com:5000/ca.crt")["attrs"] is True
    assert _item(items, "file", "/etc/docker/certs.d/10.0.0.5/ca.crt")["attrs"] is True
    assert not [i for i in role_state_items("docker_daemon", "debian12") if "certs.d" in str(i)]


@pytest.mark.parametrize("release", RELEASE_FACTS)
def test_apt_source_items_name_the_stale_files_in_sources_list_d(release):
    items = role_state_items("apt_source", release, **APT_SOURCE_VARS,
                             apt_source_stale_files=["old.list", "nvidia-docker.list", "/etc/apt/other/x.list"])
    assert _item(items, "file", APT_SOURCE_VARS["apt_source_file"])["attrs"] is True
    assert _item(items, "file", APT_SOURCE_VARS["apt_source_keyring"])
    # The backreference of the regex_replace survives the templating: each name is kept.
    assert _item(items, "glob")["glob"] == ["/etc/apt/sources.list.d/old.list",
                                            "/etc/apt/sources.list.d/nvidia-docker.list",
                                            "/etc/apt/other/x.list"]
    lines = _item(items, "lines")
    assert lines["paths"] == ["/etc/apt/sources.list.d", "/etc/apt/sources.list"]
    assert lines["exclude"] == [APT_SOURCE_VARS["apt_source_file"]]
    # The repository's address, without scheme or trailing slash, as a regular expression.
    pattern = re.compile(hs.SOURCE_LINE % lines["lines"])
    assert pattern.search("deb [signed-by=/k.gpg] https://packages.example.com/apt stable main")
    assert pattern.search("URIs: http://packages.example.com/apt/")
    assert not pattern.search("# deb https://packages.example.com/apt stable main")
    assert not pattern.search("deb https://packages-example.com/apt stable main")
    assert sorted(_packages(items)) == ["ca-certificates", "gnupg"]


def test_an_absent_apt_source_has_only_its_file_and_apt_s_proxy_file():
    # apt's proxy file is managed whatever the source's state (the distribution's packages
    # come through the proxy too).
    items = role_state_items("apt_source", "debian12", **APT_SOURCE_VARS, apt_source_state="absent")
    assert items == [{"file": APT_SOURCE_VARS["apt_source_file"], "attrs": True},
                     {"file": "/etc/apt/apt.conf.d/90gpuhost-proxy", "attrs": True}]


@pytest.mark.parametrize("release", RELEASE_FACTS)
@pytest.mark.parametrize("version", ["", "5:27.5.1-1~debian.12~bookworm"])
def test_docker_upstream_items(release, version, tmp_path):
    items = role_state_items("docker", release, docker_version=version)
    engine = next(item for item in items if "package" in item and "docker-ce" in item["package"])
    for name in ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin",
                 "docker.io", "podman-docker"):
        assert name in engine["package"], name
    assert not any("=" in name for name in _packages(items))
    assert engine["version"] is bool(version)
    assert _item(items, "unit", "docker.service")
    assert _item(items, "file", "/etc/apt/sources.list.d/docker.list")["attrs"] is True
    assert _item(items, "file", "/etc/apt/keyrings/docker.gpg")
    assert _item(items, "glob", "/snap/docker")
    # The lines item finds another source of Docker's repository for this distribution.
    distribution = RELEASE_FACTS[release]["distribution"].lower()
    lines = _item(items, "lines")
    host = FakeHost(tmp_path)
    own = f"deb [arch=amd64] https://download.docker.com/linux/{distribution} x stable\n"
    host.write("/etc/apt/sources.list.d/docker.list", own)
    assert host.reader().read(lines) == "none"
    host.write("/etc/apt/sources.list.d/docker-ce.list", own)
    assert host.reader().read(lines) == str(host.path("/etc/apt/sources.list.d/docker-ce.list"))


@pytest.mark.parametrize("release", RELEASE_FACTS)
def test_docker_distro_items(release):
    items = role_state_items("docker", release, docker_install_source="distro")
    packages = _packages(items)
    assert "docker.io" in packages and "docker-ce" in packages and "podman-docker" in packages
    # The upstream source is removed: only its file is watched, no keyring and no lines.
    assert _item(items, "file", "/etc/apt/sources.list.d/docker.list")
    assert not any("lines" in item for item in items)
    assert "/etc/apt/keyrings/docker.gpg" not in [item.get("file") for item in items]
    assert _item(items, "unit", "docker.service")


@pytest.mark.parametrize("release", RELEASE_FACTS)
def test_toolkit_items(release):
    items = role_state_items("nvidia_container_toolkit", release,
                             nvidia_container_toolkit_runtime_config_path="/etc/nvidia-container-runtime/config.toml",
                             nvidia_container_toolkit_cdi_spec="/etc/cdi/nvidia-custom.yaml")
    toolkit = _item(items, "package", ["nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                       "libnvidia-container-tools", "libnvidia-container1"])
    assert toolkit["hold"] is True and toolkit["version"] is False
    assert "python3-tomlkit" in _packages(items)
    files = [item["file"] for item in items if "file" in item]
    assert "/etc/nvidia-container-runtime/config.toml" in files
    assert "/etc/cdi/nvidia-custom.yaml" in files
    assert "/etc/apt/sources.list.d/nvidia-container-toolkit.list" in files
    assert "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg" in files
    assert _item(items, "glob", ["/etc/apt/sources.list.d/libnvidia-container.list",
                                 "/etc/apt/sources.list.d/nvidia-docker.list",
                                 "/etc/apt/sources.list.d/nvidia-container-runtime.list"])
    assert _item(items, "links", "/dev/char")["target"] == "nvidia"
    units = [unit for item in items if "unit" in item for unit in hs._patterns(item["unit"])]
    assert sorted(units) == ["nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"]
    # The refresh service is a oneshot: its activity is not the role's to keep.
    assert _item(items, "unit", ["nvidia-cdi-refresh.service"])["active"] is False
    # The stale sources of older recipes count as naming NVIDIA's repository.
    pattern = re.compile(hs.SOURCE_LINE % _item(items, "lines")["lines"])
    assert pattern.search("deb https://nvidia.github.io/nvidia-docker/ubuntu22.04/$(ARCH) /")
    assert pattern.search("deb [signed-by=/k] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /")
    assert not pattern.search("deb https://developer.download.nvidia.com/compute/cuda/repos/x /")


def test_a_pinned_toolkit_records_its_versions_and_the_legacy_package():
    items = role_state_items("nvidia_container_toolkit", "debian12", nvidia_container_toolkit_version="1.17.8-1",
                             nvidia_container_toolkit_legacy_nvidia_docker2=True)
    toolkit = _item(items, "package", ["nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                       "libnvidia-container-tools", "libnvidia-container1"])
    assert toolkit["version"] is True and toolkit["hold"] is True
    assert _item(items, "package", ["nvidia-docker2", "python3-tomlkit"])["version"] is False
    assert not any("=" in name for name in _packages(items))


def test_docker_daemon_and_docker_users_items():
    items = role_state_items("docker_daemon", "ubuntu2404", docker_daemon_config_path="/srv/docker/daemon.json")
    assert _item(items, "file", "/srv/docker/daemon.json")
    assert _item(items, "file", "/srv/docker")["attrs"] is True
    assert _item(items, "package", ["docker-ce", "docker.io"])
    assert "/etc/cdi/*.yaml" in _item(items, "glob")["glob"]
    assert role_state_items("docker_users", "debian12", docker_users=["alice", "bob"]) == [
        {"group": "docker", "members": ["alice", "bob"]}]
    assert role_state_items("docker_users", "debian12", docker_users_group="gpu") == [{"group": "gpu", "members": []}]


@pytest.mark.parametrize("persistenced, fabricmanager, units", [
    (False, False, None),
    (True, False, ["nvidia-persistenced.service"]),
    (False, True, ["nvidia-fabricmanager.service"]),
    (True, True, ["nvidia-persistenced.service", "nvidia-fabricmanager.service"]),
])
def test_toolkit_items_watch_the_gpu_node_services_asked_for(persistenced, fabricmanager, units):
    items = role_state_items("nvidia_container_toolkit", "debian12",
                             nvidia_container_toolkit_persistenced=persistenced,
                             nvidia_container_toolkit_fabricmanager=fabricmanager)
    watched = [item for item in items if "unit" in item and item.get("active")]
    assert watched == ([{"unit": units, "active": True}] if units else [])


def test_a_stopped_gpu_node_service_is_drift(host):
    item = {"unit": ["nvidia-persistenced.service", "nvidia-fabricmanager.service"], "active": True}
    host.units["nvidia-persistenced.service"] = ("active", "enabled")
    host.units["nvidia-fabricmanager.service"] = ("active", "enabled")
    converged = host.reader().read(item)
    assert converged == ("nvidia-persistenced.service active=active file=enabled; "
                         "nvidia-fabricmanager.service active=active file=enabled")
    host.units["nvidia-fabricmanager.service"] = ("failed", "enabled")
    assert host.reader().read(item) != converged
    assert "nvidia-fabricmanager.service active=failed" in host.reader().read(item)
