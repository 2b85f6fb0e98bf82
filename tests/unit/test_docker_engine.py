"""The docker role's decisions: whether the engine package may change now, and why Docker did not start."""

from __future__ import annotations

import base64

import pytest

from gpuhost_cli.ansible_plugins.filter.docker_engine import (
    FilterModule,
    docker_config_refusal,
    docker_engine_plan,
    docker_installed_packages,
    installed_packages,
    policy_candidate,
    release,
    same_version,
    upstream_version,
)

V27_5 = "5:27.5.1-1~debian.12~bookworm"
V27_5_2 = "5:27.5.2-1~debian.12~bookworm"
V27_6 = "5:27.6.0-1~debian.12~bookworm"
DISTRO = "20.10.24+dfsg1-1+deb12u1+b6"
POLICY = f"""docker.io:
  Installed: (none)
  Candidate: {DISTRO}
  Version table:
     {DISTRO} 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
"""


def dpkg(**packages):
    """dpkg-query output: name=version for installed packages, name=None for removed ones."""
    lines = []
    for name, version in packages.items():
        name = {"docker_ce": "docker-ce", "docker_io": "docker.io"}[name]
        lines.append(f"{name}\t{version or '27.0.0-1'}\t{'ii ' if version else 'rc '}")
    return "\n".join(lines) + "\n"


def info(running, live_restore=True):
    return {"ContainersRunning": running, "LiveRestoreEnabled": live_restore, "ServerVersion": "27.5.1"}


def test_parsers():
    assert installed_packages(dpkg(docker_ce=V27_5, docker_io=None)) == {"docker-ce": V27_5}
    assert installed_packages("garbage\n\ndocker-ce\t\tii \n") == {}
    assert policy_candidate(POLICY) == DISTRO
    assert policy_candidate("docker-ce:\n  Installed: (none)\n  Candidate: (none)\n") == ""
    assert policy_candidate("") == ""
    assert upstream_version(V27_5) == "27.5.1" and upstream_version(DISTRO) == "20.10.24+dfsg1"
    assert release(V27_6) == (27, 6) and release(DISTRO) == (20, 10) and release("1:abc") is None
    assert same_version(V27_5, V27_5) and same_version(V27_5, "27.5.1-1~debian.12~bookworm")
    assert not same_version(V27_5, V27_6) and not same_version(V27_5, "4:27.5.1-1~debian.12~bookworm")


@pytest.mark.parametrize("installed, pin, running, allow, action", [
    # Nothing installed yet: install, whatever runs (nothing can).
    ({}, "", 0, False, "install"),
    ({}, V27_6, 0, False, "install"),
    # Installed and not pinned: state present never upgrades.
    ({"docker_ce": V27_5}, "", 3, False, "none"),
    # Pinned to what is installed, with or without the epoch.
    ({"docker_ce": V27_5}, V27_5, 3, False, "none"),
    ({"docker_ce": V27_5}, "27.5.1-1~debian.12~bookworm", 3, False, "none"),
    # Another minor release: deferred while containers run, even with live-restore on.
    ({"docker_ce": V27_5}, V27_6, 1, False, "defer"),
    ({"docker_ce": V27_6}, V27_5, 1, False, "defer"),  # a downgrade across a minor release too
    ({"docker_ce": V27_5}, V27_6, 0, False, "change"),
    ({"docker_ce": V27_5}, V27_6, 1, True, "change"),
    ({"docker_ce": V27_5}, "5:28.0.0-1~debian.12~bookworm", 2, False, "defer"),
    # A patch release: live-restore keeps the containers.
    ({"docker_ce": V27_5}, V27_5_2, 4, False, "change"),
])
def test_engine_plan(installed, pin, running, allow, action):
    plan = docker_engine_plan(dpkg(**installed), "docker-ce", pin, "", info(running), allow)
    assert plan["action"] == action, plan
    assert plan["running"] == running


def test_a_minor_upgrade_while_containers_run_is_deferred_with_what_and_how():
    plan = docker_engine_plan(dpkg(docker_ce=V27_5), "docker-ce", V27_6, "", info(2), False)
    assert plan["action"] == "defer"
    assert plan["installed"] == f"docker-ce {V27_5}" and plan["target"] == f"docker-ce {V27_6}"
    assert plan["message"] == (
        f"docker-ce {V27_5} would become {V27_6} while 2 container(s) run (27.5 to 27.6, another major or minor "
        f"release: Docker's live-restore keeps containers only across patch releases). Nothing was changed on "
        f"this host. To finish it: stop the containers and run again, or set docker_allow_disruption: true (the "
        f"containers stop when Docker restarts).")


def test_allowed_disruption_says_the_containers_stop():
    plan = docker_engine_plan(dpkg(docker_ce=V27_5), "docker-ce", V27_6, "", info(2), True)
    assert plan["action"] == "change" and plan["message"] == ""
    assert "docker_allow_disruption is true: the 2 running container(s) stop" in plan["reason"]


def test_a_patch_release_with_live_restore_off_is_deferred():
    plan = docker_engine_plan(dpkg(docker_ce=V27_5), "docker-ce", V27_5_2, "", info(1, live_restore=False))
    assert plan["action"] == "defer"
    assert "a patch release within 27.5, but live-restore is off" in plan["message"]
    on = docker_engine_plan(dpkg(docker_ce=V27_5), "docker-ce", V27_5_2, "", info(1, live_restore=True))
    assert on["action"] == "change" and "live-restore is on: the 1 running container(s) keep running" in on["reason"]


@pytest.mark.parametrize("installed, package, policy, target", [
    ({"docker_ce": V27_5}, "docker.io", POLICY, f"docker.io {DISTRO}"),  # upstream -> distro
    ({"docker_io": DISTRO}, "docker-ce", "", "docker-ce"),  # distro -> upstream, Docker's repository not added yet
])
def test_a_switch_of_install_source_is_deferred_while_containers_run(installed, package, policy, target):
    plan = docker_engine_plan(dpkg(**installed), package, "", policy, info(1), False)
    assert plan["action"] == "defer", plan
    assert plan["target"] == target
    assert "would be replaced by" in plan["message"] and "stops every container" in plan["message"]
    assert docker_engine_plan(dpkg(**installed), package, "", policy, info(0), False)["action"] == "change"
    assert docker_engine_plan(dpkg(**installed), package, "", policy, info(1), True)["action"] == "change"


def test_docker_not_answering_counts_no_running_container():
    plan = docker_engine_plan(dpkg(docker_ce=V27_5), "docker-ce", V27_6, "", None, False)
    assert plan["action"] == "change" and plan["running"] == 0


def test_a_removed_package_is_not_installed():
    plan = docker_engine_plan(dpkg(docker_ce=None, docker_io=None), "docker-ce", "", "", None, False)
    assert plan["action"] == "install"


# ---- Why Docker did not start ----------------------------------------------------------------

PATH = "/etc/docker/daemon.json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("content, words", [
    (b"\xef\xbb\xbf{\"live-restore\": true}\n", "starts with a UTF-8 byte-order mark"),
    (b"{\"live-restore\": true,}\n", f"{PATH} is not valid JSON"),
    (b"[1, 2]\n", "must contain a JSON object at the top level"),
    (b"{\"a\": \"\xff\"}", "is not UTF-8 text"),
])
def test_the_file_itself_is_refused(content, words):
    assert words in docker_config_refusal(b64(content), PATH, None, "")


def test_a_good_file_and_a_quiet_journal_is_no_refusal():
    assert docker_config_refusal(b64(b"{\"live-restore\": true}\n"), PATH, None, "") == ""
    assert docker_config_refusal("", PATH, None, "") == ""
    assert docker_config_refusal(None, PATH, {"skipped": True}, "") == ""


def test_dockerd_validate_is_asked_where_it_exists():
    good = b64(b"{\"gpuhost-unknown\": true}\n")
    said = {"rc": 1, "stdout": "", "stderr": "unable to configure the Docker daemon with file /etc/docker/daemon.json: "
                                          "the following directives don't match any configuration option: gpuhost-unknown"}
    assert "dockerd --validate: unable to configure" in docker_config_refusal(good, PATH, said, "")
    older = {"rc": 125, "stdout": "", "stderr": "unknown flag: --validate\nSee 'dockerd --help'."}
    assert docker_config_refusal(good, PATH, older, "") == ""
    assert docker_config_refusal(good, PATH, {"rc": 0, "stdout": "configuration OK", "stderr": ""}, "") == ""


JOURNAL = """Starting docker.service - Docker Application Container Engine...
level=info msg="Starting up"
unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: gpuhost-unknown
docker.service: Main process exited, code=exited, status=1/FAILURE
docker.service: Failed with result 'exit-code'.
docker.service: Start request repeated too quickly.
docker.service: Failed with result 'start-limit-hit'.
Failed to start docker.service - Docker Application Container Engine.
"""


def test_the_journal_of_the_last_start_names_the_file():
    good = b64(b"{}\n")
    assert docker_config_refusal(good, PATH, None, JOURNAL) == (
        "Docker's journal: unable to configure the Docker daemon with file /etc/docker/daemon.json: the following "
        "directives don't match any configuration option: gpuhost-unknown")
    # Another file, or a refusal from an earlier start than the last one, is not this one.
    assert docker_config_refusal(good, PATH, None, JOURNAL.replace(PATH, "/srv/other.json")) == ""
    later = JOURNAL + "Starting docker.service - Docker Application Container Engine...\nfailed to start containerd\n"
    assert docker_config_refusal(good, PATH, None, later) == ""


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"docker_engine_plan", "docker_config_refusal", "docker_engine_cdi",
                                             "docker_installed_packages"}


def test_installed_package_names_in_output_order():
    out = "docker-compose-v2\t2.24.6\tii \ndocker-doc\t24.0.7\trc \npodman-docker\t\tun \ndocker-compose\t1.29.2\tiU \n"
    assert docker_installed_packages(out) == ["docker-compose-v2", "docker-compose"]
    assert docker_installed_packages("") == []
