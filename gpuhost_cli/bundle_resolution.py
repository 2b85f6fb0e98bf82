"""Which .deb files a release's hosts need, found and downloaded by apt itself.

apt runs with a private configuration (APT_CONFIG, no file of this machine's /etc/apt): a
sources list with the vendor repositories the roles would add (each with ``signed-by`` a
keyring that holds only the pinned key, fetched and checked here as the apt_source role
does on a host) and the distribution's archive (``signed-by`` the distribution's archive
keyring); private lists, cache and dpkg status. ``apt-get update`` refuses a repository
whose Release is not signed by its keyring, as on a host. ``apt-get install --print-uris``
then names exactly the packages, versions and files a host with the *base system* would
download for the roles' install lines, and ``apt-get install --download-only`` fetches
them, checking each file against the signed index.

The base system is a dpkg status file. By default it is the release's packages of
Priority required and important, with what they depend on (what every Debian or Ubuntu
install has); ``--base-status RELEASE=FILE`` takes a host's own /var/lib/dpkg/status
instead, so the bundle leaves out what the hosts already have.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuhost_cli import controller_keys, paths
from gpuhost_cli.bundle_plan import ReleasePlan, Repository
from gpuhost_cli.bundle_repository import deb822_stanzas
from gpuhost_cli.bundle_signing import gpgv_signer
from gpuhost_cli.inputs import UserError

__all__ = ["DISTRO_ARCHIVES", "Download", "ResolvedRelease", "Resolver", "Source"]

#: The distribution archive each release's own packages come from, and its keyring on the
#: controller (packages debian-archive-keyring and ubuntu-keyring). --distro-mirror
#: replaces the URLs.
DISTRO_ARCHIVES: dict[str, dict[str, Any]] = {
    "debian": {"suites": [("http://deb.debian.org/debian", "{codename}", "main"),
                          ("http://deb.debian.org/debian", "{codename}-updates", "main"),
                          ("http://security.debian.org/debian-security", "{codename}-security", "main")],
               "keyring": "/usr/share/keyrings/debian-archive-keyring.gpg", "keyring_package": "debian-archive-keyring",
               # A mirror of Debian keeps the security archive beside it: .../debian-security.
               "security_mirror": "{mirror}-security"},
    "ubuntu": {"suites": [("http://archive.ubuntu.com/ubuntu", "{codename}", "main universe"),
                          ("http://archive.ubuntu.com/ubuntu", "{codename}-updates", "main universe"),
                          ("http://security.ubuntu.com/ubuntu", "{codename}-security", "main universe")],
               "keyring": "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "keyring_package": "ubuntu-keyring",
               # A mirror of Ubuntu serves the -security suites itself.
               "security_mirror": "{mirror}"},
}

_PRINT_URI = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+)(?: (?P<hash>\S*))?$")


@dataclass(frozen=True)
class Source:
    """One line of the private sources list: where, which suite, and the key that must sign it."""

    name: str               # docker, nvidia_container_toolkit or distribution
    url: str                # base URL, no trailing slash
    suite: str
    components: str         # "" for a flat repository
    keyring: Path           # the keyring apt checks the Release with
    fingerprint: str        # the pinned key's fingerprint; "" for the distribution's keyring
    options: str = ""       # further [...] options of the role's line (arch=...)

    def line(self) -> str:
        options = " ".join(filter(None, [self.options, f"signed-by={self.keyring}"]))
        return f"deb [{options}] {self.url} {self.suite} {self.components}".rstrip()

    def base(self, architecture: str) -> str:
        """The URL with apt's $(ARCH) filled in."""
        return self.url.replace("$(ARCH)", architecture)

    def label(self, architecture: str) -> str:
        """"URL SUITE" as the manifest names the repository: http://h/linux/debian bookworm."""
        return f"{self.base(architecture)} {self.suite}"

    def release_url(self, architecture: str) -> str:
        suite = self.suite.replace("$(ARCH)", architecture)
        if self.components:
            return f"{self.base(architecture)}/dists/{suite}/InRelease"
        path = suite.strip("/")
        return f"{self.base(architecture)}/{path + '/' if path and path != '.' else ''}InRelease"


@dataclass(frozen=True)
class Download:
    """A .deb apt chose: name, version, architecture, where it came from and its hash."""

    package: str
    version: str
    architecture: str
    url: str
    filename: str
    size: int
    index_hash: str         # the SHA256 the signed index gives
    source: Source
    path: Path | None = None


@dataclass
class ResolvedRelease:
    """A release's downloads and how each repository's signature checked out."""

    plan: ReleasePlan
    downloads: list[Download]
    signers: dict[str, str]          # Source.label() -> fingerprint of the key that signed its Release
    base: str                        # how the base system was chosen, for the manifest


def _signing_key_module() -> Any:
    """The apt_signing_key module's key checks: one implementation for hosts and controller."""
    import ansible.module_utils

    utils = str(paths.plugins_dir() / "module_utils")
    if utils not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(utils)
    spec = importlib.util.spec_from_file_location(
        "gpuhost_apt_signing_key", paths.plugins_dir() / "modules" / "apt_signing_key.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def parse_role_line(line: str) -> tuple[str, str, str, str]:
    """(options other than signed-by, URL, suite, components) of a role's "deb [...] ..." line."""
    match = re.match(r"^deb\s+(?:\[(?P<options>[^\]]*)\]\s+)?(?P<url>\S+)\s+(?P<suite>\S+)\s*(?P<components>.*)$",
                     line.strip())
    if not match:
        raise UserError(f"cannot read the apt source line '{line}'", 1)
    options = " ".join(o for o in (match["options"] or "").split() if not o.startswith("signed-by="))
    return options, match["url"].rstrip("/"), match["suite"], match["components"].strip()


def _uri_to_filename(url: str) -> str:
    """apt's name for a downloaded index in its lists directory (URItoFileName)."""
    text = re.sub(r"^[a-z+]+://", "", url)
    text = re.sub(r"^[^/@]*@", "", text)
    return text.replace("_", "%5f").replace("/", "_")


class Resolver:
    """apt with a private configuration under ``work`` for one release and architecture."""

    def __init__(self, work: Path, architecture: str, install_recommends: bool = True,
                 distro_mirror: str | None = None, fetch: Any = None) -> None:
        self.work = work
        self.architecture = architecture
        self.install_recommends = install_recommends
        self.distro_mirror = distro_mirror.rstrip("/") if distro_mirror else None
        self.fetch = fetch or controller_keys.http_fetch()

    # ---- the private apt tree -------------------------------------------------------

    def _dirs(self, root: Path) -> dict[str, Path]:
        return {name: root / name for name in ("etc", "etc/apt.conf.d", "etc/sources.list.d", "etc/trusted.gpg.d",
                                                "etc/preferences.d", "keys", "state", "state/lists/partial",
                                                "cache/archives/partial", "log", "download")}

    def _setup(self, root: Path, sources: Iterable[Source], status: Path) -> dict[str, str]:
        for path in self._dirs(root).values():
            path.mkdir(parents=True, exist_ok=True)
        (root / "etc" / "sources.list").write_text("".join(s.line() + "\n" for s in sources), encoding="utf-8")
        shutil.copyfile(status, root / "state" / "status")
        settings = {
            "Dir::Etc::main": "/dev/null",
            "Dir::Etc::Parts": root / "etc/apt.conf.d",
            "Dir::Etc::SourceList": root / "etc/sources.list",
            "Dir::Etc::SourceParts": root / "etc/sources.list.d",
            "Dir::Etc::Trusted": root / "etc/trusted.gpg",
            "Dir::Etc::TrustedParts": root / "etc/trusted.gpg.d",
            "Dir::Etc::Preferences": root / "etc/preferences",
            "Dir::Etc::PreferencesParts": root / "etc/preferences.d",
            "Dir::State": root / "state",
            "Dir::State::status": root / "state/status",
            "Dir::State::extended_states": root / "state/extended_states",
            "Dir::Cache": root / "cache",
            "Dir::Cache::archives": root / "cache/archives",
            "Dir::Log": root / "log",
            "APT::Architecture": self.architecture,
            "APT::Architectures": self.architecture,
            "APT::Install-Recommends": "true" if self.install_recommends else "false",
            "APT::Get::AllowUnauthenticated": "false",
            "Acquire::AllowInsecureRepositories": "false",
            "Acquire::AllowDowngradeToInsecureRepositories": "false",
            "Acquire::Languages": "none",
            "Acquire::Retries": "3",
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
            "Debug::NoLocking": "true",
            "Binary::apt::APT::Keep-Downloaded-Packages": "true",
        }
        config = "".join(f'{key} "{value}";\n' for key, value in settings.items() if value != "")
        (root / "etc" / "apt.conf").write_text(config, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APT_", "DEBIAN_"))}
        return {**env, "APT_CONFIG": str(root / "etc" / "apt.conf"), "LC_ALL": "C.UTF-8",
                "DEBIAN_FRONTEND": "noninteractive"}

    def _apt(self, env: Mapping[str, str], args: list[str], what: str, timeout: int = 3600) -> str:
        try:
            done = subprocess.run(["apt-get", "-q", *args], capture_output=True, text=True, env=dict(env),
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UserError(f"{what}: cannot run apt-get ({exc}); gpuhost bundle create needs apt", 1) from None
        problems = [line for line in done.stderr.splitlines() if line.startswith(("E:", "W:", "Err:"))]
        if done.returncode != 0 or any(line.startswith(("E:", "Err:")) for line in problems):
            detail = "; ".join(problems[-4:]) or done.stderr.strip()[-600:] or f"apt-get exited with {done.returncode}"
            raise UserError(f"{what}: {detail}", 1)
        return done.stdout

    # ---- keys and sources -----------------------------------------------------------

    def vendor_keyring(self, repository: Repository, keys_dir: Path) -> Path:
        """The repository's key, fetched from its key URL and checked against the pinned
        fingerprint by the apt_signing_key module's own checks, as a keyring with that key only."""
        target = keys_dir / f"{repository.name}-{repository.fingerprint}.gpg"
        if target.is_file():
            return target
        try:
            data = self.fetch(repository.key_url)
        except controller_keys.KeyFetchError as exc:
            raise UserError(f"cannot download the key of the {repository.name} repository from {repository.key_url}: "
                            f"{exc}; check the key URL and that this machine reaches it (directly, through the "
                            f"mirror the inventory names, or through the proxy in http_proxy/https_proxy)", 1) from None
        module = _signing_key_module()
        gpg = shutil.which("gpg")
        if gpg is None:
            raise UserError("gpg is not installed on this machine; install the gnupg package", 1)
        try:
            keyring, _fingerprints, _keys = module.inspect_and_verify(
                gpg, data, repository.fingerprint, label=f"{repository.name} key ({repository.fingerprint_var})",
                origin=repository.key_url)
        except module.SigningKeyError as exc:
            raise UserError(exc.msg, 1) from None
        keys_dir.mkdir(parents=True, exist_ok=True)
        target.write_bytes(keyring)
        return target

    def distro_sources(self, plan: ReleasePlan) -> list[Source]:
        archive = DISTRO_ARCHIVES[plan.distribution]
        keyring = Path(archive["keyring"])
        if not keyring.is_file():
            raise UserError(f"{keyring} is missing: the {plan.distribution} archive's signatures are checked with it; "
                            f"install the {archive['keyring_package']} package", 1)
        sources = []
        for url, suite, components in archive["suites"]:
            if self.distro_mirror:
                url = self.distro_mirror if not suite.endswith("-security") \
                    else archive["security_mirror"].format(mirror=self.distro_mirror)
            sources.append(Source("distribution", url, suite.format(codename=plan.release), components, keyring, ""))
        return sources

    def sources(self, plan: ReleasePlan, keys_dir: Path) -> list[Source]:
        result = []
        for repository in plan.repositories:
            options, url, suite, components = parse_role_line(repository.line)
            result.append(Source(repository.name, url, suite, components,
                                 self.vendor_keyring(repository, keys_dir), repository.fingerprint, options))
        return result + self.distro_sources(plan)

    # ---- the base system ------------------------------------------------------------

    def default_base_status(self, root: Path, sources: list[Source]) -> Path:
        """A dpkg status of the release's Priority required and important packages and the
        packages they depend on, at the versions apt would install."""
        empty = root / "empty-status"
        empty.write_text("", encoding="utf-8")
        base_root = root / "base"
        env = self._setup(base_root, sources, empty)
        self.update(env, sources, base_root)
        stanzas = deb822_stanzas(_run(["apt-cache", "dumpavail"], env, "read the package lists"))
        wanted = sorted({s["Package"] for s in stanzas if s.get("Priority") in ("required", "important")})
        simulated = self._apt(env, ["-s", "install", *wanted], "work out the base system")
        chosen = dict(re.findall(r"^Inst (\S+) \((\S+) ", simulated, re.M))
        lines = []
        for stanza in stanzas:
            name = stanza["Package"].split(":")[0]
            if chosen.get(name) == stanza.get("Version"):
                lines.append(_status_stanza(stanza))
        status = root / "base-status"
        status.write_text("\n".join(lines), encoding="utf-8")
        return status

    # ---- resolution -----------------------------------------------------------------

    def update(self, env: Mapping[str, str], sources: list[Source], root: Path) -> dict[str, str]:
        """apt-get update; then the key that signed each repository's InRelease, checked
        again with gpgv against that repository's keyring. Returns {source: fingerprint}."""
        self._apt(env, ["update"], "apt-get update with the pinned keys")
        signers = {}
        lists = root / "state" / "lists"
        for source in sources:
            index = lists / _uri_to_filename(source.release_url(self.architecture))
            signer = gpgv_signer(source.keyring, index) if index.is_file() else None
            if signer is None or (source.fingerprint and signer != source.fingerprint):
                raise UserError(f"the Release of {source.url} {source.suite} is not signed by the key "
                                f"{source.fingerprint or source.keyring}; the bundle is not made", 1)
            signers[source.label(self.architecture)] = signer
        return signers

    def index_hashes(self, env: Mapping[str, str], downloads: Collection[Download]) -> dict[tuple[str, str, str], str]:
        """{(package, version, architecture): SHA256} from the signed indexes (apt-cache show)."""
        wanted = sorted({f"{d.package}:{d.architecture}={d.version}" if d.architecture != "all"
                         else f"{d.package}={d.version}" for d in downloads})
        if not wanted:
            return {}
        shown = _run(["apt-cache", "show", *wanted], env, "read the packages' hashes from the indexes")
        hashes = {}
        for stanza in deb822_stanzas(shown):
            if stanza.get("SHA256"):
                hashes.setdefault((stanza["Package"], stanza["Version"], stanza["Architecture"]), stanza["SHA256"].lower())
        missing = sorted({f"{d.package}={d.version}" for d in downloads
                          if (d.package, d.version, d.architecture) not in hashes})
        if missing:
            raise UserError(f"the signed indexes give no SHA256 for {', '.join(missing)}; the bundle is not made", 1)
        return hashes

    def resolve(self, plan: ReleasePlan, base_status: Path | None, download: bool = True) -> ResolvedRelease:
        """The packages each of the plan's package sets needs beyond the base system, and
        (``download``) the files, fetched by apt into this resolver's work directory."""
        root = self.work / plan.release
        sources = self.sources(plan, root / "keys")
        base = "status file" if base_status is not None else "priority required and important"
        if base_status is None:
            base_status = self.default_base_status(root, sources)
        env = self._setup(root, sources, base_status)
        signers = self.update(env, sources, root)
        installed = installed_packages(base_status.read_text(encoding="utf-8", errors="replace"))
        by_file: dict[str, Download] = {}
        for package_set in plan.package_sets:
            wanted = install_arguments(package_set, installed)
            if not wanted:
                continue
            args = ["install", "-y", "--allow-downgrades", "--allow-change-held-packages", *wanted]
            what = f"{plan.release}: work out the packages of {' '.join(wanted)}"
            for download_ in _print_uris(self._apt(env, ["--print-uris", *args], what), sources, self.architecture):
                by_file.setdefault(download_.filename, download_)
            if download:
                self._apt(env, ["--download-only", *args], f"{plan.release}: download {' '.join(wanted)}")
        hashes = self.index_hashes(env, list(by_file.values()))
        archives = root / "cache" / "archives"
        downloads = []
        for name in sorted(by_file):
            item = by_file[name]
            path = archives / item.filename
            item = Download(**{**item.__dict__, "index_hash": hashes[(item.package, item.version, item.architecture)],
                               "path": path if download else None})
            if download:
                digest = file_digest(path)
                if digest != item.index_hash:
                    raise UserError(f"{plan.release}: {item.filename} downloaded from {item.url} has sha256 "
                                    f"{digest}, not the {item.index_hash} of the signed index", 1)
            downloads.append(item)
        return ResolvedRelease(plan, downloads, signers, base)


def _run(argv: list[str], env: Mapping[str, str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(env), timeout=600, check=False)
    if done.returncode != 0:
        raise UserError(f"cannot {what}: {done.stderr.strip()[-400:]}", 1)
    return done.stdout


#: Fields of an index record that describe the download, not the installed package.
_DOWNLOAD_FIELDS = frozenset({"Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Description-md5"})


def installed_packages(status: str) -> set[str]:
    """The names of the packages a dpkg status file has installed."""
    return {stanza["Package"] for stanza in deb822_stanzas(status)
            if stanza.get("Status", "").split()[-1:] == ["installed"]}


def install_arguments(package_set: Iterable[str], installed: set[str]) -> list[str]:
    """The apt-get install arguments for a role's package list on a host with ``installed``.

    The roles install with ansible.builtin.apt state=present, which leaves a package that is
    installed as it is unless a version is pinned (name=version); ``apt-get install name``
    would upgrade it. So a name without a pin that the base system has is left out.
    """
    return [p for p in package_set if "=" in p or p not in installed]


def _status_stanza(stanza: Mapping[str, str]) -> str:
    """An index record as dpkg's status has it once installed: every field of the package
    (apt tells versions apart by them, not by the version string alone), none of the download."""
    lines = [f"Package: {stanza['Package']}", "Status: install ok installed"]
    lines += [f"{key}: {value}" for key, value in stanza.items()
              if key not in _DOWNLOAD_FIELDS and key not in ("Package", "Status")]
    return "\n".join(lines) + "\n"


def _print_uris(text: str, sources: list[Source], architecture: str) -> list[Download]:
    downloads = []
    for line in text.splitlines():
        match = _PRINT_URI.match(line.strip())
        if not match or not match["file"].endswith(".deb"):
            continue
        name, version, arch = _deb_name(match["file"])
        source = max((s for s in sources if match["url"].startswith(s.base(architecture) + "/")),
                     key=lambda s: len(s.base(architecture)), default=None)
        if source is None:
            raise UserError(f"{match['url']} comes from none of the bundle's repositories", 1)
        downloads.append(Download(name, version, arch, match["url"], match["file"], int(match["size"]), "", source))
    return downloads


def _deb_name(filename: str) -> tuple[str, str, str]:
    """(package, version, architecture) of apt's archive name NAME_VERSION_ARCH.deb (the
    version's ':' written as %3a)."""
    from urllib.parse import unquote

    name, version, arch = filename[:-len(".deb")].split("_", 2)
    return name, unquote(version), arch


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
