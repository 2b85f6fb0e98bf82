"""The lab's stand-ins for NVIDIA's driver and Container Toolkit 1.18+ (not NVIDIA's software).

gpuhost_cli/lab/assets/standin holds them: install-standin-driver makes a harmless stand-in
"driver" (a version file and character devices 1:3), the stand-in nvidia-smi reports it, and
the stand-in nvidia-ctk writes a CDI specification of it (`cdi generate`), lists CDI devices
(`cdi list`) and writes config.toml (`config --in-place`). build-mirror.sh packages nvidia-ctk
with NVIDIA's nvidia-cdi-refresh units and maintainer scripts. Everything runs here in
tmp_path with /bin/sh; the package tests build .debs with build-mirror.sh's own functions.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from plugin_loader import load_module

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "gpuhost_cli" / "lab" / "assets"
STANDIN = ASSETS / "standin"
IS_ROOT = os.geteuid() == 0
UUID0 = "GPU-5374616e-6469-4e00-8000-000000000000"
UUID1 = "GPU-5374616e-6469-4e00-8000-000000000001"
GPU_FACTS_QUERY = ["--query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id",
                   "--format=csv,noheader,nounits"]


def run(args, env=None, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, **kwargs)


@pytest.fixture
def lab(tmp_path):
    """Paths of a stand-in driver under tmp_path, and the environment that points at them."""
    paths = {"root": tmp_path / "driver", "smi": tmp_path / "usr/bin/nvidia-smi",
             "modules_dep": tmp_path / "lib/modules/6.1.0-test/modules.dep"}
    env = {"GPUHOST_STANDIN_DRIVER_ROOT": str(paths["root"]),
           "GPUHOST_STANDIN_NVIDIA_SMI": str(paths["smi"]),
           "GPUHOST_STANDIN_MODULES_DEP": str(paths["modules_dep"])}
    return paths, env


def install_driver(env, *args):
    """install-standin-driver; without root the device nodes are plain files."""
    extra = {} if IS_ROOT else {"GPUHOST_STANDIN_NO_NODES": "1"}
    proc = run(["/bin/sh", str(STANDIN / "install-standin-driver"), *args], {**env, **extra})
    if not IS_ROOT and proc.returncode == 0 and args and args[0] != "--remove":
        root = Path(env["GPUHOST_STANDIN_DRIVER_ROOT"])
        for i in range(int(args[1]) if len(args) > 1 else 1):
            (root / "dev" / f"gpu{i}").touch()
    return proc


def ctk(tmp_path, version="1.20.0"):
    path = tmp_path / f"nvidia-ctk-{version}"
    path.write_text((STANDIN / "nvidia-ctk").read_text().replace("@VERSION@", version))
    return path


def run_ctk(tmp_path, env, *args, version="1.20.0"):
    return run(["/bin/sh", str(ctk(tmp_path, version)), *args], env)


# ---------------------------------------------------------------------------
# The stand-in nvidia-smi
# ---------------------------------------------------------------------------

def test_nvidia_smi_without_the_driver_fails_as_nvidia_s_does(lab):
    _, env = lab
    for args in ([], ["-L"], GPU_FACTS_QUERY):
        proc = run(["/bin/sh", str(STANDIN / "nvidia-smi"), *args], env)
        assert proc.returncode == 9
        assert proc.stdout.splitlines()[0] == (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.")
        assert "stand-in" in proc.stdout


def test_nvidia_smi_reports_the_stand_in_driver_in_the_forms_gpu_facts_reads(lab):
    paths, env = lab
    assert install_driver(env, "550.54.15", "2").returncode == 0
    smi = str(paths["smi"])
    listing = run([smi, "-L"], env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == (f"GPU 0: NVIDIA Stand-in GPU (UUID: {UUID0})\n"
                              f"GPU 1: NVIDIA Stand-in GPU (UUID: {UUID1})\n")

    query = run([smi, *GPU_FACTS_QUERY], env)
    assert query.stdout.splitlines() == [
        f"0, NVIDIA Stand-in GPU, {UUID0}, 81559, 550.54.15, [N/A], 00000000:00:00.0",
        f"1, NVIDIA Stand-in GPU, {UUID1}, 81559, 550.54.15, [N/A], 00000000:01:00.0"]
    gpu_facts = load_module("gpu_facts")
    gpus = gpu_facts.parse_smi_csv(query.stdout)
    assert [(g["index"], g["uuid"], g["memory_mib"], g["pci_address"]) for g in gpus] == [
        (0, UUID0, 81559, "0000:00:00.0"), (1, UUID1, 81559, "0000:01:00.0")]

    summary = run([smi], env)
    assert summary.returncode == 0
    assert "stand-in" in summary.stdout
    assert gpu_facts.parse_cuda_version(summary.stdout) == "12.4"


def test_nvidia_smi_keeps_units_and_header_unless_told_and_refuses_unknown_fields(lab):
    paths, env = lab
    install_driver(env, "550.54.15")
    with_units = run([str(paths["smi"]), "--query-gpu", "memory.total,name", "--format", "csv"], env)
    assert with_units.stdout == "memory.total [MiB], name\n81559 MiB, NVIDIA Stand-in GPU\n"
    bad = run([str(paths["smi"]), "--query-gpu=temperature.gpu", "--format=csv"], env)
    assert bad.returncode == 2
    assert 'Field "temperature.gpu" is not a valid field to query.' in bad.stderr


# ---------------------------------------------------------------------------
# install-standin-driver
# ---------------------------------------------------------------------------

def test_install_standin_driver_makes_version_nodes_smi_and_module_line(lab):
    paths, env = lab
    proc = install_driver(env, "550.54.15", "2")
    assert proc.returncode == 0, proc.stderr
    assert (paths["root"] / "version").read_text() == "550.54.15\n"
    assert sorted(p.name for p in (paths["root"] / "dev").iterdir()) == ["gpu0", "gpu1"]
    assert paths["smi"].read_bytes() == (STANDIN / "nvidia-smi").read_bytes()
    assert paths["smi"].stat().st_mode & 0o777 == 0o755
    assert paths["modules_dep"].read_text() == "kernel/drivers/video/nvidia.ko:\n"


@pytest.mark.skipif(not IS_ROOT, reason="mknod needs root")
def test_install_standin_driver_nodes_are_harmless_character_devices(lab):
    paths, env = lab
    install_driver(env, "550.54.15", "2")
    for node in (paths["root"] / "dev").iterdir():
        st = node.stat()
        assert stat.S_ISCHR(st.st_mode)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3), "not /dev/null's numbers"


def test_install_standin_driver_is_idempotent_and_an_upgrade_changes_only_the_version(lab):
    paths, env = lab
    paths["modules_dep"].parent.mkdir(parents=True)
    paths["modules_dep"].write_text("kernel/fs/other.ko:\n")
    install_driver(env, "550.54.15", "2")
    nodes = {p.name: p.stat().st_ino for p in (paths["root"] / "dev").iterdir()}
    smi_inode = paths["smi"].stat().st_ino

    assert install_driver(env, "550.54.15", "2").returncode == 0
    assert paths["modules_dep"].read_text() == "kernel/fs/other.ko:\nkernel/drivers/video/nvidia.ko:\n"

    assert install_driver(env, "570.86.15", "2").returncode == 0
    assert (paths["root"] / "version").read_text() == "570.86.15\n"
    assert {p.name: p.stat().st_ino for p in (paths["root"] / "dev").iterdir()} == nodes
    assert paths["smi"].stat().st_ino == smi_inode
    assert paths["modules_dep"].read_text() == "kernel/fs/other.ko:\nkernel/drivers/video/nvidia.ko:\n"

    assert install_driver(env, "570.86.15", "1").returncode == 0
    assert sorted(p.name for p in (paths["root"] / "dev").iterdir()) == ["gpu0"]


def test_install_standin_driver_remove_takes_back_only_what_it_made(lab, tmp_path):
    paths, env = lab
    paths["modules_dep"].parent.mkdir(parents=True)
    paths["modules_dep"].write_text("kernel/fs/other.ko:\n")
    install_driver(env, "550.54.15")
    proc = install_driver(env, "--remove")
    assert proc.returncode == 0, proc.stderr
    assert not paths["root"].exists()
    assert not paths["smi"].exists()
    assert paths["modules_dep"].read_text() == "kernel/fs/other.ko:\n"
    assert install_driver(env, "--remove").returncode == 0, "a second --remove fails"

    # A module list that held only the stand-in's line goes; a real nvidia-smi stays.
    paths["modules_dep"].unlink()
    install_driver(env, "550.54.15")
    paths["smi"].write_text("#!/bin/sh\necho real\n")
    install_driver(env, "--remove")
    assert not paths["modules_dep"].exists()
    assert paths["smi"].read_text() == "#!/bin/sh\necho real\n"


@pytest.mark.parametrize("args", [[], ["latest"], ["550.54.15", "two"], ["1", "2", "3"]])
def test_install_standin_driver_refuses_bad_arguments(lab, args):
    paths, env = lab
    proc = install_driver(env, *args)
    assert proc.returncode == 2
    assert not paths["root"].exists()


# ---------------------------------------------------------------------------
# nvidia-ctk cdi generate
# ---------------------------------------------------------------------------

def expected_spec(root, driver="550.54.15"):
    def node(i):
        return {"path": f"/dev/gpuhost-standin-gpu{i}", "hostPath": f"{root}/dev/gpu{i}"}
    devices = []
    for i, uuid in enumerate([UUID0, UUID1]):
        devices += [{"name": str(i), "containerEdits": {"deviceNodes": [node(i)]}},
                    {"name": uuid, "containerEdits": {"deviceNodes": [node(i)]}}]
    devices.append({"name": "all", "containerEdits": {"deviceNodes": [node(0), node(1)]}})
    return {"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": devices,
            "containerEdits": {"env": ["NVIDIA_VISIBLE_DEVICES=void",
                                       f"GPUHOST_STANDIN_DRIVER_VERSION={driver}"]}}


def test_cdi_generate_writes_a_stand_in_spec_of_the_driver_the_same_each_time(lab, tmp_path):
    paths, env = lab
    install_driver(env, "550.54.15", "2")
    out = tmp_path / "run/cdi/nvidia.yaml"
    proc = run_ctk(tmp_path, env, "cdi", "generate", f"--output={out}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert 'level=info msg="Generated CDI spec with version 0.5.0"' in proc.stderr
    text = out.read_text()
    assert text.startswith("# STAND-IN CDI specification")
    assert "not NVIDIA's software" in text.splitlines()[1]
    assert yaml.safe_load(text) == expected_spec(paths["root"])
    assert out.stat().st_mode & 0o777 == 0o644
    assert os.listdir(out.parent) == ["nvidia.yaml"], "a temporary file was left behind"

    first = out.read_bytes()
    again = run_ctk(tmp_path, env, "cdi", "generate", "--output", str(out))
    assert again.returncode == 0
    assert out.read_bytes() == first

    # A driver upgrade changes the spec's driver version and nothing else.
    install_driver(env, "570.86.15", "2")
    run_ctk(tmp_path, env, "cdi", "generate", "--output", str(out))
    assert yaml.safe_load(out.read_text()) == expected_spec(paths["root"], "570.86.15")


def test_cdi_generate_without_the_driver_fails_as_without_nvml_and_writes_nothing(lab, tmp_path):
    _, env = lab
    out = tmp_path / "run/cdi/nvidia.yaml"
    proc = run_ctk(tmp_path, env, "cdi", "generate", f"--output={out}")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert ('level=error msg="failed to generate CDI spec: failed to create device CDI specs: '
            'failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND"') in proc.stderr
    assert not out.parent.exists()

    # An earlier spec stays as it was.
    out.parent.mkdir(parents=True)
    out.write_text("earlier\n")
    assert run_ctk(tmp_path, env, "cdi", "generate", f"--output={out}").returncode == 1
    assert out.read_text() == "earlier\n"


def test_cdi_generate_takes_the_output_from_the_environment_or_writes_to_stdout(lab, tmp_path):
    paths, env = lab
    install_driver(env, "550.54.15", "2")
    out = tmp_path / "var/run/cdi/nvidia.yaml"
    proc = run_ctk(tmp_path, {**env, "NVIDIA_CTK_CDI_OUTPUT_FILE_PATH": str(out)}, "--quiet", "cdi", "generate")
    assert proc.returncode == 0
    assert proc.stderr == "", "--quiet keeps only errors"
    assert yaml.safe_load(out.read_text()) == expected_spec(paths["root"])

    stdout = run_ctk(tmp_path, env, "cdi", "generate")
    assert stdout.returncode == 0
    assert stdout.stdout == out.read_text()


def test_cdi_generate_writes_json_by_flag_or_by_the_file_name(lab, tmp_path):
    paths, env = lab
    install_driver(env, "550.54.15", "2")
    proc = run_ctk(tmp_path, env, "cdi", "generate", "--format=json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected_spec(paths["root"])

    out = tmp_path / "cdi/nvidia.json"
    assert run_ctk(tmp_path, env, "cdi", "generate", "--output", str(out)).returncode == 0
    assert json.loads(out.read_text()) == expected_spec(paths["root"])
    upper = run_ctk(tmp_path, env, "cdi", "generate", "--format", "YAML", "--output", str(out))
    assert yaml.safe_load(out.read_text()) == expected_spec(paths["root"]) and upper.returncode == 0
    assert out.read_text().startswith("# STAND-IN")


@pytest.mark.parametrize("args, status, message", [
    (["--format=toml"], 1, 'level=error msg="invalid output format: toml"'),
    (["--outptu=x"], 1, "flag provided but not defined: -outptu=x"),
    (["--output"], 1, "flag needs an argument: -output"),
    (["--mode=nvml"], 2, "cdi generate --mode is not implemented in the test stand-in"),
])
def test_cdi_generate_refuses_bad_or_unimplemented_flags(lab, tmp_path, args, status, message):
    _, env = lab
    install_driver(env, "550.54.15")
    proc = run_ctk(tmp_path, env, "cdi", "generate", *args)
    assert proc.returncode == status
    assert message in proc.stderr
    assert proc.stdout == ""


# ---------------------------------------------------------------------------
# nvidia-ctk cdi list
# ---------------------------------------------------------------------------

# A specification in the layout NVIDIA's writes (keys sorted, lists at the key's indent).
NVIDIA_LAYOUT = """---
cdiVersion: 0.5.0
containerEdits:
  hooks:
  - args: [nvidia-cdi-hook, create-symlinks]
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: all
kind: example.com/gpu
"""


def test_cdi_list_lists_the_devices_of_the_spec_dirs(lab, tmp_path):
    _, env = lab
    install_driver(env, "550.54.15", "2")
    etc, run_dir = tmp_path / "etc/cdi", tmp_path / "run/cdi"
    assert run_ctk(tmp_path, env, "cdi", "generate", f"--output={run_dir}/nvidia.yaml").returncode == 0
    assert run_ctk(tmp_path, env, "cdi", "generate", f"--output={etc}/nvidia.json").returncode == 0
    (etc / "other.yaml").write_text(NVIDIA_LAYOUT)
    (etc / "broken.yaml").write_text("{{{ not a spec\n")
    (etc / "README").write_text("not a spec, not read\n")

    proc = run_ctk(tmp_path, env, "cdi", "list", "--spec-dir", str(etc), f"--spec-dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "example.com/gpu=0", "example.com/gpu=all",
        "nvidia.com/gpu=0", "nvidia.com/gpu=1", f"nvidia.com/gpu={UUID0}", f"nvidia.com/gpu={UUID1}",
        "nvidia.com/gpu=all"]
    assert 'level=info msg="Found 7 CDI devices"' in proc.stderr
    assert "broken.yaml" in proc.stderr and "README" not in proc.stderr

    only_run = run_ctk(tmp_path, env, "cdi", "list", f"--spec-dir={run_dir}")
    assert len(only_run.stdout.splitlines()) == 5
    empty = run_ctk(tmp_path, env, "cdi", "list", f"--spec-dir={tmp_path / 'none'}")
    assert empty.returncode == 0 and empty.stdout == ""
    assert 'msg="Found 0 CDI devices"' in empty.stderr
    assert run_ctk(tmp_path, env, "cdi", "list", "--all").returncode == 1


# ---------------------------------------------------------------------------
# nvidia-ctk config
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version, runtimes", [
    ("1.17.8", ["docker-runc", "runc", "crun"]),
    ("1.20.0", ["runc", "crun"]),
])
def test_config_in_place_writes_the_stand_in_default_when_missing(tmp_path, version, runtimes):
    path = tmp_path / "etc/nvidia-container-runtime/config.toml"
    proc = run_ctk(tmp_path, {}, "--quiet", "config", f"--config-file={path}", "--in-place", version=version)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    text = path.read_text()
    assert text.startswith(f"# Default config.toml of the gpuhost lab's nvidia-ctk stand-in {version} "
                           "(not NVIDIA's software).\n")
    config = tomllib.loads(text)
    assert config["nvidia-container-runtime"]["mode"] == "auto"
    assert config["nvidia-container-runtime"]["runtimes"] == runtimes
    assert config["nvidia-container-runtime"]["modes"]["cdi"]["spec-dirs"] == ["/etc/cdi", "/var/run/cdi"]
    assert config["disable-require"] is False
    assert set(config) >= {"nvidia-container-cli", "nvidia-container-runtime-hook", "nvidia-ctk"}
    assert "#accept-nvidia-visible-devices-envvar-when-unprivileged = true" in text.splitlines()
    assert path.stat().st_mode & 0o777 == 0o644


def test_config_keeps_an_existing_file_byte_for_byte(tmp_path):
    path = tmp_path / "config.toml"
    original = b'# edited by hand\n[nvidia-container-runtime]\nmode = "cdi"\n'
    path.write_bytes(original)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    for args in (["--config-file", str(path), "--in-place"], ["-c", str(path), "-i"]):
        proc = run_ctk(tmp_path, {}, "config", *args)
        assert proc.returncode == 0, proc.stderr
        assert path.read_bytes() == original
        assert path.stat().st_mtime == 1_000_000_000
    shown = run_ctk(tmp_path, {}, "config", f"--config-file={path}")
    assert shown.stdout.encode() == original


def test_config_without_in_place_prints_and_refuses_bad_flags(tmp_path):
    path = tmp_path / "missing/config.toml"
    shown = run_ctk(tmp_path, {}, "config", f"--config-file={path}")
    assert shown.returncode == 0
    assert tomllib.loads(shown.stdout)["nvidia-container-runtime"]["mode"] == "auto"
    assert not path.parent.exists()
    assert run_ctk(tmp_path, {}, "config", "default").stdout == shown.stdout

    unknown = run_ctk(tmp_path, {}, "config", "--in-plaec")
    assert unknown.returncode == 1
    assert "flag provided but not defined: -in-plaec" in unknown.stderr
    both = run_ctk(tmp_path, {}, "config", f"--config-file={path}", "-i", "-o", str(tmp_path / "x"))
    assert both.returncode == 1
    assert "cannot specify both --in-place and --output" in both.stderr
    assert run_ctk(tmp_path, {}, "config", "--set", "nvidia-container-runtime.mode=cdi").returncode == 2


def test_the_existing_commands_still_answer(tmp_path):
    assert run_ctk(tmp_path, {}, "--version").stdout == "NVIDIA Container Toolkit CLI version 1.20.0 (stand-in)\n"
    dev_char = run_ctk(tmp_path, {}, "system", "create-dev-char-symlinks", f"--dev-char-path={tmp_path / 'c'}")
    assert dev_char.returncode == 0
    other = run_ctk(tmp_path, {}, "runtime", "configure")
    assert other.returncode == 2
    assert "not implemented in the test stand-in" in other.stderr


# ---------------------------------------------------------------------------
# The packages: build-mirror.sh's functions, sourced
# ---------------------------------------------------------------------------

needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb is not installed")


@pytest.fixture(scope="module")
def base_debs(tmp_path_factory):
    """nvidia-container-toolkit-base of four releases, built by build-mirror.sh's toolkit_debs."""
    out = tmp_path_factory.mktemp("debs")
    versions = ["1.17.8-1", "1.18.0~rc.1-1", "1.18.1-1", "1.20.0-1"]
    script = (f'source "{ASSETS}/build-mirror.sh"; work="{out}/work"; '
              f'for v in {" ".join(versions)}; do toolkit_debs "{out}" "$v"; done')
    proc = run(["bash", "-c", script], {"GPUHOST_CACHE": str(out / "cache")})
    assert proc.returncode == 0, proc.stderr
    debs = {}
    for version in versions:
        deb = out / f"nvidia-container-toolkit-base_{version}_{arch()}.deb"
        tree = out / f"tree-{version}"
        subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
        debs[version.removesuffix("-1")] = tree
    return debs


def arch():
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()


def files_of(tree):
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*")
                  if p.is_file() and p.relative_to(tree).parts[0] != "DEBIAN")


COMMON = ["usr/bin/nvidia-container-runtime", "usr/bin/nvidia-ctk",
          "usr/share/doc/nvidia-container-toolkit-base/STAND-IN"]
UNITS = ["nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"]
ENV = "etc/nvidia-container-toolkit/nvidia-cdi-refresh.env"


@needs_dpkg
@pytest.mark.parametrize("version, unit_dir, env, scripts", [
    ("1.17.8", "", [], ["control", "postinst"]),
    ("1.18.0~rc.1", "/etc/systemd/system", [], ["control", "postinst", "postrm", "prerm"]),
    ("1.18.1", "/etc/systemd/system", [ENV], ["conffiles", "control", "postinst", "postrm", "prerm"]),
    ("1.20.0", "/lib/systemd/system", [ENV], ["conffiles", "control", "postinst", "postrm", "prerm"]),
])
def test_the_base_package_carries_each_release_s_files(base_debs, version, unit_dir, env, scripts):
    tree = base_debs[version]
    files = COMMON + env + ([f"{unit_dir[1:]}/{u}" for u in UNITS] if unit_dir else [])
    assert files_of(tree) == sorted(files)
    assert sorted(p.name for p in (tree / "DEBIAN").iterdir()) == scripts
    for rel in files:
        mode = (tree / rel).stat().st_mode & 0o777
        assert mode == (0o755 if rel.startswith("usr/bin/") else 0o644), rel
    if "conffiles" in scripts:
        assert (tree / "DEBIAN/conffiles").read_text() == f"/{ENV}\n"
    postinst = (tree / "DEBIAN/postinst").read_text()
    assert ("/usr/bin/nvidia-ctk --quiet config --config-file=/etc/nvidia-container-runtime/config.toml "
            "--in-place") in postinst
    assert f'unit_dir="{unit_dir}"' in postinst
    for script in ("postinst", "prerm", "postrm"):
        if script in scripts:
            assert run(["sh", "-n", str(tree / "DEBIAN" / script)]).returncode == 0
            assert (tree / "DEBIAN" / script).stat().st_mode & 0o777 == 0o755
    for path in tree.rglob("*"):
        if path.is_file() and path.name != "control":
            text = path.read_text()
            assert "@VERSION@" not in text and "@UNIT_DIR@" not in text
            assert not [line for line in text.splitlines() if line.startswith(("@>=", "@<"))], path


def unit(tree, name):
    path = next(tree.rglob(name))
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


@needs_dpkg
def test_the_units_carry_each_release_s_directives(base_debs):
    service = unit(base_debs["1.20.0"], "nvidia-cdi-refresh.service")
    assert service[1] == "Description=Regenerate the NVIDIA CDI specification (stand-in)"
    assert "Type=oneshot" in service
    assert "Environment=NVIDIA_CTK_CDI_OUTPUT_FILE_PATH=/var/run/cdi/nvidia.yaml" in service
    assert "EnvironmentFile=-/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env" in service
    assert [line for line in service if line.startswith("ExecStart=")] == [
        "ExecStart=/bin/sh -c '/usr/bin/nvidia-smi -L || /usr/sbin/nvidia-smi -L || /usr/lib/wsl/lib/nvidia-smi -L'",
        "ExecStart=/usr/bin/nvidia-ctk cdi generate"]
    assert "ConditionPathExists=|/usr/bin/nvidia-smi" in service
    assert "ConditionPathExists=/usr/bin/nvidia-ctk" in service
    assert "Restart=on-failure" in service and "After=multi-user.target" not in service
    assert "CapabilityBoundingSet=CAP_SYS_MODULE CAP_SYS_ADMIN CAP_MKNOD" in service

    old = unit(base_debs["1.18.1"], "nvidia-cdi-refresh.service")
    assert [line for line in old if line.startswith("ExecStart=")] == ["ExecStart=/usr/bin/nvidia-ctk cdi generate"]
    assert "ExecCondition=/usr/bin/grep -qE '/(nvidia|nvidia-current)\\.ko[:]' /lib/modules/%v/modules.dep" in old
    assert "Restart=on-failure" not in old

    first = unit(base_debs["1.18.0~rc.1"], "nvidia-cdi-refresh.service")
    assert "ExecStart=/usr/bin/nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml" in first
    assert "ConditionPathExists=/usr/bin/nvidia-smi" in first

    for version in ("1.18.1", "1.20.0"):
        path_unit = unit(base_debs[version], "nvidia-cdi-refresh.path")
        assert [line for line in path_unit if line.startswith("PathChanged=")] == [
            "PathChanged=/lib/modules/%v/modules.dep", "PathChanged=/lib/modules/%v/modules.dep.bin",
            "PathChanged=/usr/bin/nvidia-ctk"]
        assert path_unit[1].endswith("(stand-in)") and "WantedBy=multi-user.target" in path_unit
    assert "PathChanged=/usr/bin/nvidia-ctk" not in unit(base_debs["1.18.0~rc.1"], "nvidia-cdi-refresh.path")


@needs_dpkg
@pytest.mark.parametrize("version, args, disabled", [
    ("1.18.1", ["upgrade", "1.20.0-1"], True),       # /etc/systemd/system -> /lib/systemd/system
    ("1.18.1", ["upgrade", "1.19.0-1"], False),      # the same place: the links stay
    ("1.20.0", ["upgrade", "1.20.1-1"], False),
    ("1.20.0", ["upgrade", "1.18.1-1"], True),
    ("1.20.0", ["upgrade", "1.17.8-1"], True),       # no units in 1.17.x
    ("1.18.0~rc.1", ["remove"], True),
    ("1.20.0", ["failed-upgrade", "1.20.0-1"], False),
])
def test_the_prerm_disables_the_units_when_they_move_or_go(base_debs, tmp_path, version, args, disabled):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >>{log}\n')
    (bin_dir / "systemctl").chmod(0o755)
    proc = run(["sh", str(base_debs[version] / "DEBIAN/prerm"), *args], {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    assert ("disable nvidia-cdi-refresh.path nvidia-cdi-refresh.service" in calls) is disabled
