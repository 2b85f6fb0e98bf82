#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge settings into the Docker daemon configuration file
description:
  - Manages C(/etc/docker/daemon.json) by merging the keys given in O(settings)
    into the existing file. Keys that are not mentioned in O(settings) are kept
    exactly as they are, so settings written by other tools (for example
    C(nvidia-ctk runtime configure)) or by an administrator survive.
  - Merge rules. Every key of O(settings) is set. A key whose value is V(null)
    is removed from the file. Dictionary values are merged recursively, so
    nested keys the host already has are kept (an existing C(runtimes.foo)
    survives when C(runtimes.nvidia) is set). Lists are replaced as a whole.
  - The file is only rewritten when the parsed data changes. Formatting and key
    order of an existing file are never a reason to rewrite it. When the file
    is written it uses 4-space indentation (the layout C(nvidia-ctk) writes),
    keeps the key order of the existing file and appends new keys in the order
    given in O(settings).
  - Before anything is written the merged configuration is checked. Values of
    well-known keys must have the type dockerd expects, registry mirrors must
    be C(https://) URLs, insecure registries and unauthenticated TCP sockets
    are refused unless O(allow_insecure=true), and no key may also be given as
    a command-line flag of dockerd in the systemd unit (dockerd refuses to
    start when an option is given both ways).
  - Where the installed dockerd supports C(--validate) (Docker 23.0 and later)
    the candidate file is validated by dockerd itself before it replaces the
    live file.
  - The file is replaced atomically (temporary file in the same directory,
    fsync, rename) with mode C(0644), owned by C(root:root) when the module
    runs as root.
author:
  - gpuhost contributors
options:
  path:
    description:
      - Path of the daemon configuration file.
      - If it is a symbolic link, the file the link points to is read and
        written and the link is kept.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Keys to manage, as they appear in C(daemon.json).
      - A value of V(null) removes the key. Dictionaries are merged
        recursively (V(null) inside them removes the nested key), lists and
        scalars replace the existing value.
    type: dict
    required: true
  backup:
    description:
      - Before an existing file is replaced, copy it to
        C(<file>.<YYYYmmddTHHMMSS>.bak) next to it.
    type: bool
    default: true
  validate_with_dockerd:
    description:
      - Whether to run C(dockerd --validate --config-file <candidate>) before
        the candidate replaces the live file.
      - V(auto) validates when dockerd is installed and supports
        C(--validate) (Docker 23.0 and later), and skips validation otherwise.
      - V(always) fails when dockerd is missing or cannot validate.
      - V(never) skips this step. The module's own checks still run.
    type: str
    choices: [auto, always, never]
    default: auto
  unit_paths:
    description:
      - Systemd unit files and drop-in directories scanned for dockerd
        command-line flags in C(ExecStart=) lines.
      - Unit files are listed lowest priority first; the last one that exists
        is the effective unit (C(/etc) overrides C(/lib)), as systemd does.
      - For directories, the C(*.conf) files inside are drop-ins. They are
        applied in file-name order after the unit; when two directories hold a
        drop-in with the same name, the one listed first wins. A path ending
        in C(.conf) is treated as a single drop-in.
      - An empty C(ExecStart=) resets the commands collected so far, and lines
        continued with a trailing backslash are joined. C($VAR) and C(${VAR})
        are expanded from C(Environment=) and C(EnvironmentFile=).
    type: list
    elements: path
    default:
      - /lib/systemd/system/docker.service
      - /usr/lib/systemd/system/docker.service
      - /etc/systemd/system/docker.service
      - /etc/systemd/system/docker.service.d
      - /run/systemd/system/docker.service.d
  allow_insecure:
    description:
      - Accept a configuration with non-empty C(insecure-registries) or a
        C(tcp://) entry in C(hosts) without C(tlsverify=true).
      - When accepted, a warning is still returned.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - C(reload_sufficient) tells whether C(systemctl reload docker) (SIGHUP) is
    enough to apply the change. It is V(true) only when every changed key is
    one dockerd re-reads on reload (C(debug), C(labels), C(live-restore),
    C(max-concurrent-downloads), C(max-concurrent-uploads),
    C(max-download-attempts), C(default-runtime), C(runtimes),
    C(authorization-plugins), C(insecure-registries), C(registry-mirrors),
    C(allow-nondistributable-artifacts), C(shutdown-timeout)). Anything else
    needs a restart. It is V(false) when nothing changed.
  - C(features) is deliberately treated as needing a restart because several
    feature flags are only read when dockerd starts.
  - Flags passed through variables (for example C($DOCKER_OPTS) from Debian's
    C(EnvironmentFile=-/etc/default/docker)) are found by reading the unit's
    C(Environment=) and C(EnvironmentFile=) settings; the conflict message then
    names the file that holds the flag.
"""

EXAMPLES = r"""
- name: Register the NVIDIA runtime and make it the default
  docker_daemon_config:
    settings:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
          args: []
      default-runtime: nvidia

- name: Rotate container logs and use a registry mirror
  docker_daemon_config:
    settings:
      log-driver: json-file
      log-opts:
        max-size: 100m
        max-file: "3"
      registry-mirrors:
        - https://mirror.example.com
  register: daemon_json

- name: Apply the change
  ansible.builtin.systemd_service:
    name: docker
    state: "{{ 'reloaded' if daemon_json.reload_sufficient else 'restarted' }}"
  when: daemon_json.changed

- name: Remove a key the role used to manage
  docker_daemon_config:
    settings:
      experimental: null

- name: Require validation by dockerd (Docker 23.0 or later)
  docker_daemon_config:
    settings:
      live-restore: true
    validate_with_dockerd: always
"""

RETURN = r"""
path:
  description: The configuration file path as given.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
target:
  description: The file actually read and written; differs from RV(path) when RV(path) is a symbolic link.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
is_symlink:
  description: Whether RV(path) is a symbolic link.
  returned: always
  type: bool
  sample: false
config:
  description: The configuration after the merge (what the file contains, or would contain in check mode).
  returned: always
  type: dict
  sample: {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}, "default-runtime": "nvidia"}
changed_keys:
  description: Sorted top-level keys that were added, changed or removed.
  returned: always
  type: list
  elements: str
  sample: ["default-runtime", "runtimes"]
reload_sufficient:
  description:
    - V(true) when every changed key is applied by C(systemctl reload docker) (SIGHUP),
      V(false) when a restart is needed or when nothing changed.
  returned: always
  type: bool
  sample: true
validated:
  description: Whether dockerd validated the candidate file.
  returned: always
  type: bool
  sample: false
backup_file:
  description: Path of the backup of the previous file.
  returned: when a backup was made
  type: str
  sample: /etc/docker/daemon.json.20240101T120000.bak
diff:
  description: The file text before and after, in diff mode.
  returned: in diff mode
  type: dict
  sample:
    before: "{}\n"
    after: "{\n    \"debug\": true\n}\n"
    before_header: /etc/docker/daemon.json
    after_header: /etc/docker/daemon.json
"""

import copy
import datetime
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import tempfile

from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule


DEFAULT_PATH = '/etc/docker/daemon.json'

DEFAULT_UNIT_PATHS = (
    '/lib/systemd/system/docker.service',
    '/usr/lib/systemd/system/docker.service',
    '/etc/systemd/system/docker.service',
    '/etc/systemd/system/docker.service.d',
    '/run/systemd/system/docker.service.d',
)

DOCKERD_SEARCH_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/sbin', '/bin']

# Options dockerd applies on SIGHUP ("Configuration reload behavior" in the
# dockerd reference). "features" is listed there too but several feature
# flags are only read at start-up, so it is treated as needing a restart.
RELOADABLE_KEYS = frozenset((
    'debug',
    'labels',
    'live-restore',
    'max-concurrent-downloads',
    'max-concurrent-uploads',
    'max-download-attempts',
    'default-runtime',
    'runtimes',
    'authorization-plugins',
    'insecure-registries',
    'registry-mirrors',
    'allow-nondistributable-artifacts',
    'shutdown-timeout',
))

BUILTIN_RUNTIMES = ('runc', 'io.containerd.runc.v2')

BOOL_KEYS = (
    'live-restore', 'debug', 'experimental', 'ipv6', 'icc', 'iptables',
    'ip6tables', 'ip-forward', 'ip-masq', 'userland-proxy', 'tls', 'tlsverify',
    'init', 'no-new-privileges', 'selinux-enabled', 'raw-logs',
)
STRING_LIST_KEYS = (
    'hosts', 'insecure-registries', 'labels', 'dns', 'dns-search', 'dns-opts',
    'exec-opts', 'storage-opts', 'authorization-plugins',
)
STRING_KEYS = (
    'data-root', 'log-driver', 'storage-driver', 'log-level', 'cgroup-parent',
    'default-runtime', 'exec-root', 'pidfile', 'group', 'userns-remap',
    'tlscacert', 'tlscert', 'tlskey', 'containerd',
)
INT_KEYS = (
    'max-concurrent-downloads', 'max-concurrent-uploads',
    'max-download-attempts', 'shutdown-timeout', 'mtu',
)
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')

# dockerd flag name (without dashes) -> daemon.json key paths it collides with.
# Flags not listed here map to the key of the same name.
FLAG_KEYS = {
    'H': (('hosts',),),
    'host': (('hosts',),),
    'D': (('debug',),),
    'l': (('log-level',),),
    's': (('storage-driver',),),
    'g': (('data-root',), ('graph',)),
    'graph': (('data-root',), ('graph',)),
    'data-root': (('data-root',), ('graph',)),
    'G': (('group',),),
    'b': (('bridge',),),
    'p': (('pidfile',),),
    'registry-mirror': (('registry-mirrors',),),
    'insecure-registry': (('insecure-registries',),),
    'log-opt': (('log-opts',),),
    'add-runtime': (('runtimes',),),
    'exec-opt': (('exec-opts',),),
    'label': (('labels',),),
    'dns-opt': (('dns-opts',),),
    'storage-opt': (('storage-opts',),),
    'authorization-plugin': (('authorization-plugins',),),
    'default-ulimit': (('default-ulimits',),),
    'default-address-pool': (('default-address-pools',),),
    'node-generic-resource': (('node-generic-resources',),),
    'cluster-store-opt': (('cluster-store-opts',),),
    'cdi-spec-dir': (('cdi-spec-dirs',),),
    'feature': (('features',),),
    'http-proxy': (('proxies', 'http-proxy'),),
    'https-proxy': (('proxies', 'https-proxy'),),
    'no-proxy': (('proxies', 'no-proxy'),),
}
# Flags that are not configuration options.
NON_CONFIG_FLAGS = frozenset(('config-file', 'validate', 'help', 'version', 'v', 'h'))
# Short flags that take no value (so further letters in the token are flags).
SHORT_BOOL_FLAGS = frozenset(('D', 'v', 'h'))

EXEC_PREFIX_CHARS = '@-:+!'


class DaemonConfigError(Exception):
    """A problem that stops the module; ``details`` go into the failure result."""

    def __init__(self, msg, **details):
        super(DaemonConfigError, self).__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _json_kind(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, (int, float)):
        return 'a number'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, list):
        return 'an array'
    if isinstance(value, dict):
        return 'an object'
    return type(value).__name__


def _show(value, limit=120):
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


def resolve_path(path):
    """Return ``(target, is_symlink)``: the file to read and write for ``path``."""
    if os.path.islink(path):
        return os.path.realpath(path), True
    return path, False


def parse_config_text(text, path):
    """Parse daemon.json text. Returns ``(data, duplicate_keys)``.

    Empty or whitespace-only text is ``{}``; a leading UTF-8 BOM is ignored.
    """
    if text.startswith(u'\ufeff'):
        text = text[1:]
    if not text.strip():
        return {}, []

    duplicates = []

    def pairs_hook(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    def reject_constant(name):
        raise ValueError('%s is not allowed in JSON' % name)

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise DaemonConfigError(
            'docker_daemon: %s is not valid JSON: %s at line %d, column %d. '
            'The file was left untouched; fix it by hand or remove it.'
            % (path, exc.msg, exc.lineno, exc.colno),
            line=exc.lineno, column=exc.colno,
        )
    except (ValueError, RecursionError) as exc:
        raise DaemonConfigError(
            'docker_daemon: %s is not valid JSON: %s. The file was left untouched; '
            'fix it by hand or remove it.' % (path, exc))
    if not isinstance(data, dict):
        raise DaemonConfigError(
            'docker_daemon: %s must contain a JSON object at the top level, found %s. '
            'The file was left untouched; fix it by hand or remove it.'
            % (path, _json_kind(data)))
    return data, duplicates


def read_config(target, path=None):
    """Read the configuration file.

    Returns a dict with ``data`` (parsed, ``{}`` when missing or empty),
    ``text`` (file text without BOM, ``None`` when missing), ``exists`` and
    ``warnings``.
    """
    path = path or target
    try:
        with open(target, 'rb') as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {'data': {}, 'text': None, 'exists': False, 'warnings': []}
    except OSError as exc:
        raise DaemonConfigError('docker_daemon: cannot read %s: %s' % (path, exc.strerror or exc))
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise DaemonConfigError(
            'docker_daemon: %s is not UTF-8 text (invalid byte at offset %d). '
            'The file was left untouched; fix it by hand or remove it.' % (path, exc.start))
    if text.startswith(u'\ufeff'):
        text = text[1:]
    data, duplicates = parse_config_text(text, path)
    warnings = [
        'docker_daemon: key %r appears more than once in %s; the last value is kept, as dockerd does.'
        % (key, path) for key in sorted(set(duplicates))
    ]
    return {'data': data, 'text': text, 'exists': True, 'warnings': warnings}


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------

def normalize_settings(settings):
    """Return ``settings`` as plain JSON data (string keys), or fail."""
    if not isinstance(settings, dict):
        raise DaemonConfigError(
            'docker_daemon: settings must be a dictionary, got %s' % _json_kind(settings))
    try:
        return json.loads(json.dumps(settings, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise DaemonConfigError('docker_daemon: settings cannot be written as JSON: %s' % exc)


def _merge_into(target, settings):
    for key, value in settings.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = {}
            target[key] = current
            _merge_into(current, value)
        else:
            target[key] = copy.deepcopy(value)


def merge_settings(existing, settings):
    """Merge ``settings`` into a copy of ``existing`` and return it.

    ``None`` removes a key, dictionaries merge recursively, anything else
    (lists included) replaces the existing value. Existing keys keep their
    position; new keys are appended in the order of ``settings``.
    """
    result = copy.deepcopy(existing)
    _merge_into(result, settings)
    return result


def canonical_json(data):
    """Order-independent, type-exact text form used to compare configurations."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(',', ':'), allow_nan=False)


def config_equal(left, right):
    """Equality that tells ``true`` from ``1`` and ``1`` from ``1.0``; key order is ignored."""
    return canonical_json(left) == canonical_json(right)


def changed_keys(before, after):
    """Sorted top-level keys added, removed or changed between two configurations."""
    keys = set(before) | set(after)
    result = []
    for key in keys:
        if (key in before) != (key in after):
            result.append(key)
        elif not config_equal(before[key], after[key]):
            result.append(key)
    return sorted(result)


def classify_reload(changed_keys):  # pylint: disable=redefined-outer-name
    """True when every key in ``changed_keys`` is applied by a dockerd reload (SIGHUP).

    An empty list gives ``False``: nothing to apply.
    """
    keys = list(changed_keys)
    if not keys:
        return False
    return all(key in RELOADABLE_KEYS for key in keys)


def format_config(data):
    """The text written to the file: 4-space indentation, key order kept, final newline."""
    return json.dumps(data, indent=4, ensure_ascii=False, allow_nan=False) + '\n'


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def _bad(key, value, expected):
    return "docker_daemon: invalid value for '%s': got %s, expected %s" % (key, _show(value), expected)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_string_list(config, key, errors):
    value = config[key]
    if not isinstance(value, list):
        errors.append(_bad(key, value, 'a list of strings'))
        return False
    ok = True
    for index, item in enumerate(value):
        if not isinstance(item, str):
            errors.append(_bad('%s[%d]' % (key, index), item, 'a string'))
            ok = False
    return ok


def _check_mirror(key, url, errors):
    expected = ('an https:// URL with a host and no path, query or fragment '
                '(e.g. "https://mirror.example.com")')
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # raises ValueError on a malformed port
    except ValueError:
        errors.append(_bad(key, url, expected))
        return
    if (parts.scheme.lower() != 'https' or not host or parts.path not in ('', '/')
            or parts.query or parts.fragment or '?' in url or '#' in url):
        errors.append(_bad(key, url, expected))


def validate_config(config, allow_insecure=False):
    """Check the merged configuration.

    Returns a list of warnings; raises :class:`DaemonConfigError` listing every
    problem found.
    """
    errors = []
    warnings = []

    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DaemonConfigError('docker_daemon: the configuration cannot be written as JSON: %s' % exc)

    for key in BOOL_KEYS:
        if key in config and not isinstance(config[key], bool):
            errors.append(_bad(key, config[key], 'a JSON boolean (true or false, without quotes)'))

    for key in INT_KEYS:
        if key in config and not _is_int(config[key]):
            errors.append(_bad(key, config[key], 'an integer'))

    for key in STRING_KEYS:
        if key in config and not isinstance(config[key], str):
            errors.append(_bad(key, config[key], 'a string'))

    string_lists_ok = {}
    for key in STRING_LIST_KEYS:
        if key in config:
            string_lists_ok[key] = _check_string_list(config, key, errors)

    if 'log-level' in config and isinstance(config['log-level'], str) \
            and config['log-level'] not in LOG_LEVELS:
        errors.append(_bad('log-level', config['log-level'], 'one of %s' % ', '.join(LOG_LEVELS)))

    if string_lists_ok.get('labels'):
        for index, label in enumerate(config['labels']):
            if '=' not in label:
                errors.append(_bad('labels[%d]' % index, label, 'a "key=value" string'))

    if string_lists_ok.get('dns'):
        for index, server in enumerate(config['dns']):
            try:
                ipaddress.ip_address(server)
            except ValueError:
                errors.append(_bad('dns[%d]' % index, server, 'an IP address'))

    if 'registry-mirrors' in config:
        if _check_string_list(config, 'registry-mirrors', errors):
            for index, url in enumerate(config['registry-mirrors']):
                _check_mirror('registry-mirrors[%d]' % index, url, errors)

    if 'log-opts' in config:
        opts = config['log-opts']
        if not isinstance(opts, dict):
            errors.append(_bad('log-opts', opts, 'an object whose values are strings'))
        else:
            for name, value in opts.items():
                if isinstance(value, str):
                    continue
                if isinstance(value, (bool, int, float)):
                    quoted = json.dumps(json.dumps(value))
                    errors.append(_bad(
                        'log-opts.%s' % name, value,
                        'a string; dockerd accepts only strings in log-opts, quote it: %s' % quoted))
                else:
                    errors.append(_bad('log-opts.%s' % name, value, 'a string'))

    runtime_names = []
    if 'runtimes' in config:
        runtimes = config['runtimes']
        if not isinstance(runtimes, dict):
            errors.append(_bad('runtimes', runtimes, 'an object mapping runtime names to objects'))
        else:
            runtime_names = list(runtimes)
            for name, spec in runtimes.items():
                key = 'runtimes.%s' % name
                if not isinstance(spec, dict):
                    errors.append(_bad(key, spec, 'an object with a "path"'))
                    continue
                path = spec.get('path')
                runtime_type = spec.get('runtimeType')
                if 'path' in spec or runtime_type is None:
                    if not isinstance(path, str) or not path.strip():
                        errors.append(_bad(
                            key + '.path', path,
                            'a non-empty string (a binary name such as "nvidia-container-runtime" '
                            'or an absolute path)'))
                if runtime_type is not None and (not isinstance(runtime_type, str) or not runtime_type):
                    errors.append(_bad(key + '.runtimeType', runtime_type, 'a non-empty string'))
                for list_key in ('runtimeArgs', 'args'):
                    if list_key in spec:
                        args = spec[list_key]
                        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                            errors.append(_bad('%s.%s' % (key, list_key), args, 'a list of strings'))

    if 'default-runtime' in config and isinstance(config['default-runtime'], str):
        name = config['default-runtime']
        if name not in runtime_names and name not in BUILTIN_RUNTIMES:
            known = sorted(set(runtime_names) | set(BUILTIN_RUNTIMES))
            errors.append(_bad(
                'default-runtime', name,
                'a runtime defined under "runtimes" or a built-in runtime (%s)' % ', '.join(known)))

    if 'features' in config:
        features = config['features']
        if not isinstance(features, dict):
            errors.append(_bad('features', features, 'an object of booleans'))
        else:
            for name, value in features.items():
                if not isinstance(value, bool):
                    errors.append(_bad('features.%s' % name, value, 'a JSON boolean'))

    # Insecure settings: only judged once their types are right.
    if string_lists_ok.get('insecure-registries') and config['insecure-registries']:
        registries = config['insecure-registries']
        if allow_insecure:
            warnings.append(
                'docker_daemon: insecure-registries is set to %s; images from these registries are '
                'pulled without TLS verification (accepted because allow_insecure=true).' % _show(registries))
        else:
            errors.append(
                "docker_daemon: 'insecure-registries' is set to %s; images from these registries "
                'would be pulled without TLS verification. Remove the key, or set '
                'allow_insecure=true to accept this.' % _show(registries))

    if string_lists_ok.get('hosts'):
        tcp = [h for h in config['hosts'] if h.strip().lower().startswith('tcp://')]
        if tcp and config.get('tlsverify') is not True:
            if allow_insecure:
                warnings.append(
                    'docker_daemon: hosts contains %s without tlsverify=true; anyone who can reach '
                    'that socket controls this host (accepted because allow_insecure=true).' % _show(tcp))
            else:
                errors.append(
                    "docker_daemon: 'hosts' contains %s but 'tlsverify' is not true; anyone who can "
                    'reach that socket gets root on this host. Set tlsverify=true with tlscacert, '
                    'tlscert and tlskey, or set allow_insecure=true to accept this.' % _show(tcp))

    if errors:
        raise DaemonConfigError('\n'.join(errors), errors=errors)
    return warnings


# ---------------------------------------------------------------------------
# systemd unit scanning
# ---------------------------------------------------------------------------

def _logical_lines(text):
    """Lines of a unit file with backslash continuations joined and comments dropped."""
    logical = []
    pending = None
    for raw in text.splitlines():
        line = raw.strip()
        if pending is not None:
            if line.startswith(('#', ';')):
                continue
            pending += ' ' + line
        else:
            if not line or line.startswith(('#', ';')):
                continue
            pending = line
        if pending.endswith('\\'):
            pending = pending[:-1].rstrip()
            continue
        logical.append(pending)
        pending = None
    if pending is not None:
        logical.append(pending)
    return logical


SERVICE_DIRECTIVES = ('ExecStart', 'Environment', 'EnvironmentFile')


def service_directives(text):
    """``[(key, value), ...]`` for ExecStart, Environment and EnvironmentFile of [Service]."""
    directives = []
    section = None
    for line in _logical_lines(text):
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1].strip()
            continue
        if section != 'Service' or '=' not in line:
            continue
        key, value = line.split('=', 1)
        key = key.strip()
        if key in SERVICE_DIRECTIVES:
            directives.append((key, value.strip()))
    return directives


def exec_start_entries(text):
    """``ExecStart=`` values of the [Service] section, in order.

    An empty ``ExecStart=`` is returned as ``None`` (it resets the list).
    Lines ending in a backslash are joined with the next one; comment lines
    inside a continuation are skipped.
    """
    return [value or None for key, value in service_directives(text) if key == 'ExecStart']


def unit_files(unit_paths):
    """Files that make up the unit, in the order systemd applies them."""
    main_unit = None
    dropins = {}
    for path in unit_paths:
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError:
                continue
            for name in names:
                full = os.path.join(path, name)
                if name.endswith('.conf') and name not in dropins and os.path.isfile(full):
                    dropins[name] = full
        elif os.path.isfile(path):
            if path.endswith('.conf'):
                dropins.setdefault(os.path.basename(path), path)
            else:
                main_unit = path
    files = [main_unit] if main_unit else []
    files.extend(dropins[name] for name in sorted(dropins))
    return files


def _is_var_name(name):
    return bool(name) and (name[0].isalpha() or name[0] == '_') and \
        all(c.isalnum() or c == '_' for c in name)


def parse_assignments(text):
    """``{name: value}`` from an ``Environment=`` value (``A=1 "B=two words"``)."""
    result = {}
    for word in _split_command(text):
        name, sep, value = word.partition('=')
        if sep and _is_var_name(name):
            result[name] = value
    return result


def read_environment_file(path):
    """``{name: value}`` from a systemd EnvironmentFile (shell-style ``export`` tolerated)."""
    try:
        with open(path, 'rb') as handle:
            text = handle.read().decode('utf-8', 'replace')
    except OSError:
        return {}
    result = {}
    for line in _logical_lines(text):
        if line.startswith('export '):
            line = line[len('export '):].strip()
        name, sep, value = line.partition('=')
        name = name.strip()
        if not sep or not _is_var_name(name):
            continue
        try:
            value = ' '.join(shlex.split(value, comments=True))
        except ValueError:
            value = value.strip()
        result[name] = value
    return result


def effective_service(unit_paths):
    """What systemd would use: ``(commands, environment)``.

    ``commands`` is ``[(file, command line), ...]`` of the effective ExecStart
    lines; ``environment`` maps variable names to ``(value, file it came from)``
    (``Environment=`` first, then ``EnvironmentFile=`` files, which win).
    """
    commands = []
    assignments = []
    env_files = []
    for path in unit_files(unit_paths):
        try:
            with open(path, 'rb') as handle:
                text = handle.read().decode('utf-8', 'replace')
        except OSError:
            continue
        for key, value in service_directives(text):
            if key == 'ExecStart':
                if value:
                    commands.append((path, value))
                else:
                    commands = []
            elif key == 'Environment':
                if value:
                    assignments.append((path, value))
                else:
                    assignments = []
            elif key == 'EnvironmentFile':
                if value:
                    env_files.append(value.lstrip('-'))
                else:
                    env_files = []
    environment = {}
    for path, value in assignments:
        for name, var_value in parse_assignments(value).items():
            environment[name] = (var_value, path)
    for env_file in env_files:
        for name, var_value in read_environment_file(env_file).items():
            environment[name] = (var_value, env_file)
    return commands, environment


def effective_exec_start(unit_paths):
    """``[(file, command line), ...]`` of the ExecStart lines systemd would use."""
    return effective_service(unit_paths)[0]


def referenced_variables(command):
    """Names of ``$NAME`` and ``${NAME}`` references in a command line, in order."""
    names = []
    index = 0
    while True:
        index = command.find('$', index)
        if index < 0 or index + 1 >= len(command):
            return names
        index += 1
        if command[index] == '{':
            close = command.find('}', index)
            name = command[index + 1:close] if close > 0 else ''
        else:
            end = index
            while end < len(command) and (command[end].isalnum() or command[end] == '_'):
                end += 1
            name = command[index:end]
        if _is_var_name(name) and name not in names:
            names.append(name)


def _split_command(command):
    try:
        return shlex.split(command, posix=True)
    except ValueError:
        return command.split()


def dockerd_flags(command):
    """Flags given to dockerd in an ExecStart command line.

    Returns ``[(flag as written, name, value or None), ...]`` or ``None`` when
    the command does not run dockerd.
    """
    tokens = _split_command(command)
    if not tokens:
        return None
    first = tokens[0].lstrip(EXEC_PREFIX_CHARS)
    prefix = tokens[0][:len(tokens[0]) - len(first)]
    tokens = [first] + tokens[1:]
    if '@' in prefix and len(tokens) > 1:
        del tokens[1]  # the argv[0] override
    start = None
    for index, token in enumerate(tokens):
        if os.path.basename(token) == 'dockerd':
            start = index + 1
            break
    if start is None:
        return None

    return parse_flags(tokens[start:])


def parse_flags(args):
    """``[(flag as written, name, value or None), ...]`` from dockerd arguments."""
    flags = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == '--':
            break
        nxt = args[index] if index < len(args) and not args[index].startswith('-') else None
        if token.startswith('--'):
            body = token[2:]
            if '=' in body:
                name, value = body.split('=', 1)
            else:
                name, value = body, nxt
            if name:
                flags.append(('--' + name, name, value))
        elif token.startswith('-') and len(token) > 1:
            pos = 1
            while pos < len(token):
                letter = token[pos]
                if letter in SHORT_BOOL_FLAGS:
                    flags.append(('-' + letter, letter, None))
                    pos += 1
                    continue
                rest = token[pos + 1:]
                value = rest[1:] if rest.startswith('=') else (rest or nxt)
                flags.append(('-' + letter, letter, value))
                break
    return flags


def flag_keys(name):
    """daemon.json key paths an option flag collides with (empty for non-options)."""
    if name in NON_CONFIG_FLAGS:
        return ()
    if name in FLAG_KEYS:
        return FLAG_KEYS[name]
    if len(name) == 1:
        return ()
    return ((name,),)


def _has_key_path(config, key_path):
    node = config
    for part in key_path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _conflict_message(key, flag, where, via, reload_units):
    location = '%s (%s)' % (where, via) if via else where
    remedy = ' (then systemctl daemon-reload)' if reload_units else ''
    return ("docker_daemon: '%s' is set in daemon.json and as flag '%s' in %s; dockerd refuses to "
            'start when an option is given both ways. Remove the flag from %s%s or drop the key.'
            % (key, flag, location, where, remedy))


def find_conflicts(config, unit_paths):
    """Keys of ``config`` that the unit also passes to dockerd as flags.

    Flags inside ``$VAR``/``${VAR}`` are found through the unit's
    ``Environment=`` and ``EnvironmentFile=`` settings.

    Returns ``(conflicts, config_files)``: conflicts as dicts with ``key``,
    ``flag``, ``unit_file`` (where the flag is written) and ``message``;
    ``config_files`` the values of any ``--config-file`` flags seen as
    ``(value, file)``.
    """
    conflicts = []
    config_files = []
    seen = set()
    units = set(unit_files(unit_paths))
    commands, environment = effective_service(unit_paths)
    for unit_file, command in commands:
        flags = dockerd_flags(command)
        if flags is None:
            continue
        sources = [(flags, unit_file, None)]
        for name in referenced_variables(command):
            if name in environment:
                value, origin = environment[name]
                sources.append((parse_flags(_split_command(value)), origin, '$' + name))
        for source_flags, where, via in sources:
            for written, name, value in source_flags:
                if name == 'config-file' and value:
                    config_files.append((value, where))
                for key_path in flag_keys(name):
                    if not _has_key_path(config, key_path):
                        continue
                    key = '.'.join(key_path)
                    marker = (key, written, where)
                    if marker in seen:
                        continue
                    seen.add(marker)
                    conflicts.append({
                        'key': key,
                        'flag': written,
                        'unit_file': where,
                        'message': _conflict_message(key, written, where, via, where in units),
                    })
    return conflicts, config_files


def check_conflicts(config, unit_paths, path):
    """Raise on flag/key conflicts; return warnings about the unit."""
    conflicts, config_files = find_conflicts(config, unit_paths)
    if conflicts:
        raise DaemonConfigError(
            '\n'.join(c['message'] for c in conflicts),
            conflicts=[{k: c[k] for k in ('key', 'flag', 'unit_file')} for c in conflicts])
    warnings = []
    wanted = os.path.realpath(path)
    for value, unit_file in config_files:
        if os.path.realpath(value) != wanted:
            warnings.append(
                'docker_daemon: %s starts dockerd with --config-file %s, so changes to %s do not '
                'take effect.' % (unit_file, value, path))
    return warnings


# ---------------------------------------------------------------------------
# dockerd validation
# ---------------------------------------------------------------------------

def run_subprocess(argv):
    """Run ``argv``; return ``(rc, stdout, stderr)`` as text."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return (proc.returncode, proc.stdout.decode('utf-8', 'replace'),
            proc.stderr.decode('utf-8', 'replace'))


def resolve_validate_cmd(mode, dockerd, run=run_subprocess):
    """Command prefix to validate a config file with, or ``None`` to skip.

    ``mode`` is ``auto``, ``always`` or ``never``; ``dockerd`` the binary path
    (``None`` when not installed). The file to check is appended to the
    returned list.
    """
    if mode == 'never':
        return None
    if not dockerd:
        if mode == 'always':
            raise DaemonConfigError(
                'docker_daemon: validate_with_dockerd=always but dockerd was not found '
                '(searched PATH and %s).' % ', '.join(DOCKERD_SEARCH_DIRS))
        return None
    try:
        rc, out, err = run([dockerd, '--help'])
    except (OSError, subprocess.SubprocessError) as exc:
        if mode == 'always':
            raise DaemonConfigError(
                'docker_daemon: validate_with_dockerd=always but %s --help could not run: %s' % (dockerd, exc))
        return None
    if '--validate' in (out or '') + (err or ''):
        return [dockerd, '--validate', '--config-file']
    if mode == 'always':
        raise DaemonConfigError(
            'docker_daemon: validate_with_dockerd=always but %s does not support --validate '
            '(Docker 23.0 or later is needed).' % dockerd)
    return None


def run_validation(validate_cmd, candidate, path, run=run_subprocess):
    """Run ``validate_cmd + [candidate]``; raise with dockerd's message on rejection."""
    argv = list(validate_cmd) + [candidate]
    try:
        rc, out, err = run(argv)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DaemonConfigError(
            'docker_daemon: could not run %s to validate the new configuration: %s. '
            '%s was left untouched.' % (argv[0], exc, path))
    if rc != 0:
        said = '\n'.join(part.strip() for part in (err, out) if part and part.strip())
        said = said.replace(candidate, path) or 'exit status %d' % rc
        raise DaemonConfigError(
            'docker_daemon: dockerd rejected the new configuration for %s; the live file was left '
            'untouched. dockerd said: %s' % (path, said),
            rc=rc, stdout=out, stderr=err)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def _write_temp(directory, basename, data):
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % basename, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            if hasattr(os, 'geteuid') and os.geteuid() == 0:
                os.fchown(handle.fileno(), 0, 0)
            os.fsync(handle.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def backup_name(target, now=None):
    """``<target>.<YYYYmmddTHHMMSS>.bak``, with a counter if that name is taken."""
    stamp = (now or datetime.datetime.now()).strftime('%Y%m%dT%H%M%S')
    name = '%s.%s.bak' % (target, stamp)
    counter = 1
    while os.path.lexists(name):
        name = '%s.%s.%d.bak' % (target, stamp, counter)
        counter += 1
    return name


def make_backup(target, now=None):
    name = backup_name(target, now)
    shutil.copy2(target, name)
    return name


def _ensure_dir(directory):
    if os.path.isdir(directory):
        return
    os.makedirs(directory, 0o755)
    os.chmod(directory, 0o755)


# ---------------------------------------------------------------------------
# The whole operation
# ---------------------------------------------------------------------------

def apply_config(path, settings, check_mode=False, backup=True, unit_paths=DEFAULT_UNIT_PATHS,
                 allow_insecure=False, validate_cmd=None, run=run_subprocess, now=None):
    """Merge ``settings`` into the file at ``path``; what the module does.

    ``validate_cmd`` is a command prefix (see :func:`resolve_validate_cmd`)
    run on the candidate file before it replaces the live one, or ``None``.
    Returns the module result (with ``warnings`` and ``diff`` for ``main`` to
    hand over); raises :class:`DaemonConfigError`.
    """
    settings = normalize_settings(settings)
    target, is_symlink = resolve_path(path)
    current = read_config(target, path)
    warnings = list(current['warnings'])

    candidate = merge_settings(current['data'], settings)
    warnings.extend(validate_config(candidate, allow_insecure=allow_insecure))
    warnings.extend(check_conflicts(candidate, unit_paths, path))

    keys = changed_keys(current['data'], candidate)
    changed = not config_equal(current['data'], candidate)
    before_text = current['text'] if current['text'] is not None else ''
    after_text = format_config(candidate) if changed else before_text

    result = {
        'changed': changed,
        'path': path,
        'target': target,
        'is_symlink': is_symlink,
        'config': candidate,
        'changed_keys': keys,
        'reload_sufficient': classify_reload(keys) if changed else False,
        'validated': False,
        'warnings': warnings,
        'diff': {
            'before': before_text,
            'after': after_text,
            'before_header': path,
            'after_header': path,
        },
    }
    if not changed:
        return result

    data = after_text.encode('utf-8')
    directory = os.path.dirname(target) or '.'
    basename = os.path.basename(target)

    if check_mode:
        if validate_cmd:
            tmp = _write_temp(tempfile.gettempdir(), basename, data)
            try:
                run_validation(validate_cmd, tmp, path, run=run)
            finally:
                _unlink_quietly(tmp)
            result['validated'] = True
        return result

    try:
        _ensure_dir(directory)
        tmp = _write_temp(directory, basename, data)
    except OSError as exc:
        raise DaemonConfigError('docker_daemon: cannot write %s: %s' % (target, exc.strerror or exc))
    try:
        if validate_cmd:
            run_validation(validate_cmd, tmp, path, run=run)
            result['validated'] = True
        if backup and current['exists']:
            try:
                result['backup_file'] = make_backup(target, now)
            except OSError as exc:
                raise DaemonConfigError(
                    'docker_daemon: cannot back up %s: %s; the file was left untouched.'
                    % (target, exc.strerror or exc))
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise DaemonConfigError('docker_daemon: cannot replace %s: %s' % (target, exc.strerror or exc))
        tmp = None
        _fsync_dir(directory)
    finally:
        if tmp is not None:
            _unlink_quietly(tmp)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default=DEFAULT_PATH),
            settings=dict(type='dict', required=True),
            backup=dict(type='bool', default=True),
            validate_with_dockerd=dict(type='str', default='auto', choices=['auto', 'always', 'never']),
            unit_paths=dict(type='list', elements='path', default=list(DEFAULT_UNIT_PATHS)),
            allow_insecure=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def run(argv):
        return module.run_command(argv)

    try:
        validate_cmd = None
        if params['validate_with_dockerd'] != 'never':
            dockerd = module.get_bin_path('dockerd', opt_dirs=DOCKERD_SEARCH_DIRS)
            validate_cmd = resolve_validate_cmd(params['validate_with_dockerd'], dockerd, run=run)
        result = apply_config(
            params['path'],
            params['settings'],
            check_mode=module.check_mode,
            backup=params['backup'],
            unit_paths=params['unit_paths'],
            allow_insecure=params['allow_insecure'],
            validate_cmd=validate_cmd,
            run=run,
        )
    except DaemonConfigError as exc:
        module.fail_json(msg=exc.msg, path=params['path'], **exc.details)
    except (OSError, subprocess.SubprocessError) as exc:
        module.fail_json(msg='docker_daemon: %s failed: %s' % (params['path'], exc), path=params['path'])

    for warning in result.pop('warnings'):
        module.warn(warning)
    if not module._diff:
        result.pop('diff')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
