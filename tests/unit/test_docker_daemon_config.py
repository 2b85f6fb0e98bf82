"""Tests for the docker_daemon_config module (gpuhost_cli/ansible_plugins/modules).

The rules it shares with the role's preflight are tested on their own in test_daemon_json.py,
test_daemon_schema.py, test_systemd_unit.py and test_atomic_file.py; here the module works on
temporary files.
"""

import datetime
import json
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st
from json_strategies import JSON_OBJECTS
from plugin_loader import ModuleFail, load_module, run_adhoc, run_main

from gpuhost_cli.ansible_plugins.filter.docker_daemon import docker_daemon_settings_problems

ddc = load_module('docker_daemon_config')
Error = ddc.DaemonConfigError

NVIDIA_CTK_TEXT = (
    '{\n'
    '    "runtimes": {\n'
    '        "nvidia": {\n'
    '            "args": [],\n'
    '            "path": "nvidia-container-runtime"\n'
    '        }\n'
    '    }\n'
    '}'
)
INSECURE_HINT = 'allow insecure settings (docker_daemon_allow_insecure: true)'


def apply(path, settings, **kwargs):
    """apply_config with no unit files scanned unless given."""
    kwargs.setdefault('unit_paths', [])
    return ddc.apply_config(str(path), settings, **kwargs)


def write_json(path, data, indent=4):
    Path(path).write_text(json.dumps(data, indent=indent) + '\n', encoding='utf-8')


def read_json(path):
    return json.loads(Path(path).read_text(encoding='utf-8'))


def dir_listing(directory):
    return sorted(os.listdir(directory))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def did_you_mean(key):
    """The suggestion in an unknown-key message, in either quote style."""
    return re.compile('Did you mean ["\']%s["\']\\?' % re.escape(key))


@pytest.fixture
def daemon_json(tmp_path):
    return tmp_path / 'docker' / 'daemon.json'


@pytest.fixture
def umask_077():
    old = os.umask(0o077)
    yield
    os.umask(old)


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------

def test_merge_keeps_foreign_nested_keys(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {
        'runtimes': {'foo': {'path': '/usr/bin/foo-runtime'}},
        'log-opts': {'max-file': '5'},
        'data-root': '/srv/docker',
    })
    result = apply(daemon_json, {
        'runtimes': {'nvidia': {'path': 'nvidia-container-runtime', 'args': []}},
        'log-opts': {'max-size': '100m'},
    })
    on_disk = read_json(daemon_json)
    assert result['changed'] is True
    assert on_disk == result['config']
    assert on_disk['runtimes'] == {
        'foo': {'path': '/usr/bin/foo-runtime'},
        'nvidia': {'path': 'nvidia-container-runtime', 'args': []},
    }
    assert on_disk['log-opts'] == {'max-file': '5', 'max-size': '100m'}
    assert on_disk['data-root'] == '/srv/docker'
    assert result['changed_keys'] == ['log-opts', 'runtimes']


def test_null_removes_top_level_and_nested_keys(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'experimental': True, 'log-opts': {'max-file': '3', 'max-size': '10m'},
                             'debug': False})
    result = apply(daemon_json, {'experimental': None, 'log-opts': {'max-file': None},
                                 'not-there': None})
    assert read_json(daemon_json) == {'log-opts': {'max-size': '10m'}, 'debug': False}
    assert result['changed_keys'] == ['experimental', 'log-opts']


def test_null_for_missing_key_is_no_change(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    before = daemon_json.read_bytes()
    result = apply(daemon_json, {'experimental': None})
    assert result['changed'] is False
    assert result['changed_keys'] == []
    assert daemon_json.read_bytes() == before


def test_lists_are_replaced_not_merged(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'registry-mirrors': ['https://old.example.com', 'https://other.example.com']})
    apply(daemon_json, {'registry-mirrors': ['https://new.example.com']})
    assert read_json(daemon_json)['registry-mirrors'] == ['https://new.example.com']


def test_key_order_kept_and_second_run_is_unchanged(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"log-driver": "local", "log-opts": {"max-size": "10m", "max-file": "2"}, '
                           '"data-root": "/srv"}\n', encoding='utf-8')
    settings = {'labels': ['site=a'], 'log-opts': {'compress': 'true'}, 'debug': True}
    first = apply(daemon_json, settings)
    assert first['changed'] is True
    text = daemon_json.read_text(encoding='utf-8')
    assert list(json.loads(text)) == ['log-driver', 'log-opts', 'data-root', 'labels', 'debug']
    assert list(json.loads(text)['log-opts']) == ['max-size', 'max-file', 'compress']
    assert text == ddc.format_config(first['config'])
    assert text.endswith('}\n') and '\n    "log-driver": "local",' in text

    first_bytes = daemon_json.read_bytes()
    first_mtime = daemon_json.stat().st_mtime_ns
    second = apply(daemon_json, settings)
    assert second['changed'] is False
    assert second['changed_keys'] == []
    assert second['reload_sufficient'] is False
    assert daemon_json.read_bytes() == first_bytes
    assert daemon_json.stat().st_mtime_ns == first_mtime
    assert 'backup_file' not in second
    assert 'rollback_file' not in second


@pytest.mark.parametrize('text', [
    NVIDIA_CTK_TEXT,
    '{\n  "runtimes": {\n    "nvidia": {\n      "path": "nvidia-container-runtime",\n      "args": []\n    }\n  }\n}\n',
    '{"runtimes":{"nvidia":{"args":[],"path":"nvidia-container-runtime"}}}',
], ids=['nvidia-ctk-4-space', 'hand-written-2-space', 'compact'])
def test_nvidia_ctk_style_file_converges_without_rewrite(daemon_json, text):
    daemon_json.parent.mkdir()
    daemon_json.write_text(text, encoding='utf-8')
    result = apply(daemon_json, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime', 'args': []}}})
    assert result['changed'] is False
    assert daemon_json.read_text(encoding='utf-8') == text
    assert dir_listing(daemon_json.parent) == ['daemon.json']


def test_type_change_is_a_change(daemon_json):
    # true == 1 in Python; the file must still be corrected.
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"max-concurrent-downloads": 3.0, "debug": true}', encoding='utf-8')
    result = apply(daemon_json, {'max-concurrent-downloads': 3})
    assert result['changed'] is True
    assert result['changed_keys'] == ['max-concurrent-downloads']
    assert '"max-concurrent-downloads": 3,' in daemon_json.read_text(encoding='utf-8')


def test_non_ascii_is_written_as_utf8(daemon_json):
    daemon_json.parent.mkdir()
    apply(daemon_json, {'labels': ['site=Zürich']})
    assert 'site=Zürich' in daemon_json.read_text(encoding='utf-8')


# ---------------------------------------------------------------------------
# Reading odd files
# ---------------------------------------------------------------------------

def test_malformed_json_names_line_and_column_and_touches_nothing(daemon_json):
    daemon_json.parent.mkdir()
    bad = '{\n    "debug": true\n    "live-restore": true\n}\n'
    daemon_json.write_text(bad, encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(daemon_json, {'debug': False})
    msg = str(info.value)
    assert str(daemon_json) in msg
    assert 'is not valid JSON' in msg
    assert "Expecting ',' delimiter" in msg
    assert 'line 3, column 5' in msg
    assert info.value.details == {'line': 3, 'column': 5}
    assert daemon_json.read_text(encoding='utf-8') == bad
    assert dir_listing(daemon_json.parent) == ['daemon.json']


@pytest.mark.parametrize('text,kind', [('[1, 2]', 'an array'), ('"x"', 'a string'), ('null', 'null')])
def test_top_level_must_be_an_object(daemon_json, text, kind):
    daemon_json.parent.mkdir()
    daemon_json.write_text(text, encoding='utf-8')
    with pytest.raises(Error, match='must contain a JSON object at the top level, found %s' % kind):
        apply(daemon_json, {'debug': True})
    assert daemon_json.read_text(encoding='utf-8') == text


def test_nan_is_rejected(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"mtu": NaN}', encoding='utf-8')
    with pytest.raises(Error, match='is not valid JSON: NaN is not allowed'):
        apply(daemon_json, {'debug': True})


def test_not_utf8_is_rejected(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_bytes(b'{"labels": ["a=\xff"]}')
    with pytest.raises(Error, match='is not UTF-8 text'):
        apply(daemon_json, {'debug': True})


@pytest.mark.parametrize('content', [b'', b'   \n\t\n'], ids=['empty', 'whitespace'])
def test_empty_or_whitespace_file_is_an_empty_object(daemon_json, content):
    daemon_json.parent.mkdir()
    daemon_json.write_bytes(content)
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is True
    assert daemon_json.read_text(encoding='utf-8') == '{\n    "debug": true\n}\n'
    assert result['diff']['before'] == content.decode()


@pytest.mark.parametrize('content', [b'', b'  \n'], ids=['empty', 'whitespace'])
def test_empty_file_with_nothing_to_set_is_left_alone(daemon_json, content):
    daemon_json.parent.mkdir()
    daemon_json.write_bytes(content)
    result = apply(daemon_json, {'debug': None})
    assert result['changed'] is False
    assert daemon_json.read_bytes() == content


def test_bom_is_tolerated_and_dropped_on_write(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_bytes(b'\xef\xbb\xbf{"data-root": "/srv/docker"}\n')
    result = apply(daemon_json, {'debug': True})
    raw = daemon_json.read_bytes()
    assert not raw.startswith(b'\xef\xbb\xbf')
    assert json.loads(raw.decode('utf-8')) == {'data-root': '/srv/docker', 'debug': True}
    assert result['changed_keys'] == ['debug']
    assert result['bom_removed'] is True


def test_bom_file_with_equal_data_is_rewritten_without_the_bom(daemon_json):
    daemon_json.parent.mkdir()
    content = b'\xef\xbb\xbf{"debug": true}'
    daemon_json.write_bytes(content)
    daemon_json.chmod(0o640)
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is True
    assert result['bom_removed'] is True
    assert result['changed_keys'] == []
    assert result['reload_sufficient'] is False
    assert any('byte-order mark' in w for w in result['warnings'])
    assert daemon_json.read_bytes() == b'{"debug": true}'
    assert mode_of(daemon_json) == 0o640
    assert Path(result['rollback_file']).read_bytes() == content
    again = apply(daemon_json, {'debug': True})
    assert (again['changed'], again['bom_removed']) == (False, False)


def test_bom_file_in_check_mode_is_reported_and_kept(daemon_json):
    daemon_json.parent.mkdir()
    content = b'\xef\xbb\xbf{"debug": true}'
    daemon_json.write_bytes(content)
    result = apply(daemon_json, {'debug': True}, check_mode=True)
    assert (result['changed'], result['bom_removed']) == (True, True)
    assert daemon_json.read_bytes() == content
    assert dir_listing(daemon_json.parent) == ['daemon.json']


def test_file_without_bom_reports_none_removed(daemon_json):
    assert apply(daemon_json, {'debug': True})['bom_removed'] is False


def test_missing_file_and_directory_are_created(tmp_path, umask_077):
    target = tmp_path / 'etc' / 'docker' / 'daemon.json'
    result = apply(target, {'live-restore': True})
    assert result['changed'] is True
    assert result['existed'] is False
    assert read_json(target) == {'live-restore': True}
    assert mode_of(target) == 0o644
    assert mode_of(target.parent) == 0o755
    assert 'backup_file' not in result
    assert 'rollback_file' not in result
    assert result['diff']['before'] == ''
    if os.geteuid() == 0:
        assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)


def test_duplicate_keys_warn(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"debug": false, "debug": true}', encoding='utf-8')
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is False
    assert any("'debug' appears more than once" in w for w in result['warnings'])


def test_huge_file(daemon_json):
    daemon_json.parent.mkdir()
    labels = ['label%d=value%d' % (i, i) for i in range(5000)]
    nested = {'k%d' % i: {'inner': list(range(5)), 'name': 'n%d' % i} for i in range(3000)}
    write_json(daemon_json, {'labels': labels, 'x-vendor': nested})
    result = apply(daemon_json, {'debug': True, 'x-vendor': {'k2999': {'name': 'changed'}}},
                   extra_keys=['x-vendor'])
    on_disk = read_json(daemon_json)
    assert on_disk['labels'] == labels
    assert on_disk['x-vendor']['k2999'] == {'inner': [0, 1, 2, 3, 4], 'name': 'changed'}
    assert on_disk['x-vendor']['k0'] == nested['k0']
    assert result['changed_keys'] == ['debug', 'x-vendor']
    assert apply(daemon_json, {'debug': True})['changed'] is False


def test_symlinked_file_updates_target_and_keeps_link(tmp_path):
    real_dir = tmp_path / 'real'
    real_dir.mkdir()
    real = real_dir / 'daemon.json'
    write_json(real, {'data-root': '/srv/docker'})
    real.chmod(0o600)
    link_dir = tmp_path / 'etc-docker'
    link_dir.mkdir()
    link = link_dir / 'daemon.json'
    link.symlink_to(os.path.relpath(real, link_dir))

    result = apply(link, {'debug': True})
    assert link.is_symlink()
    assert os.readlink(link) == os.path.relpath(real, link_dir)
    assert read_json(real) == {'data-root': '/srv/docker', 'debug': True}
    assert mode_of(real) == 0o600
    assert result['is_symlink'] is True
    assert result['target'] == str(real)
    assert result['path'] == str(link)
    assert result['backup_file'].startswith(str(real) + '.')
    assert dir_listing(link_dir) == ['daemon.json']


def test_dangling_symlink_creates_the_target(tmp_path):
    link = tmp_path / 'daemon.json'
    real = tmp_path / 'store' / 'daemon.json'
    link.symlink_to(real)
    result = apply(link, {'debug': True})
    assert link.is_symlink()
    assert read_json(real) == {'debug': True}
    assert result['target'] == str(real)


# ---------------------------------------------------------------------------
# Mode, owner and the copy kept for a rollback
# ---------------------------------------------------------------------------

def test_private_file_stays_private_and_so_does_its_backup(daemon_json, umask_077):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"proxies": {"http-proxy": "http://user:pw@proxy:3128"}}', encoding='utf-8')
    daemon_json.chmod(0o600)
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is True
    assert mode_of(daemon_json) == 0o600
    assert mode_of(result['backup_file']) == 0o600
    assert result['rollback_file'] == result['backup_file']


@pytest.mark.skipif(os.geteuid() != 0, reason='changing a file owner needs root')
def test_owner_and_group_are_kept(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{}', encoding='utf-8')
    os.chown(daemon_json, 1234, 2345)
    daemon_json.chmod(0o640)
    result = apply(daemon_json, {'debug': True})
    for path in (daemon_json, Path(result['backup_file'])):
        st = path.stat()
        assert (st.st_uid, st.st_gid, mode_of(path)) == (1234, 2345, 0o640)


def test_without_backup_the_previous_bytes_are_kept_for_a_rollback(daemon_json):
    daemon_json.parent.mkdir()
    old = b'{ "data-root": "/srv/docker" }'
    daemon_json.write_bytes(old)
    daemon_json.chmod(0o640)
    result = apply(daemon_json, {'debug': True}, backup=False)
    assert result['existed'] is True
    assert 'backup_file' not in result
    rollback = Path(result['rollback_file'])
    assert rollback == daemon_json.parent / '.daemon.json.gpuhost-previous'
    assert rollback.read_bytes() == old
    assert mode_of(rollback) == 0o640
    assert (rollback.stat().st_uid, rollback.stat().st_gid) == (daemon_json.stat().st_uid, daemon_json.stat().st_gid)
    assert dir_listing(daemon_json.parent) == ['.daemon.json.gpuhost-previous', 'daemon.json']


def test_stale_rollback_copy_is_removed_by_the_next_real_run(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    stale = daemon_json.parent / '.daemon.json.gpuhost-previous'
    stale.write_text('{"debug": "stale"}', encoding='utf-8')
    assert apply(daemon_json, {'debug': True}, check_mode=True)['changed'] is False
    assert stale.exists()
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is False
    assert not stale.exists()
    result = apply(daemon_json, {'debug': False}, backup=False)
    assert json.loads(stale.read_text(encoding='utf-8')) == {'debug': True}
    assert result['rollback_file'] == str(stale)


def test_existed_is_reported(daemon_json):
    assert apply(daemon_json, {'debug': True}, check_mode=True)['existed'] is False
    assert apply(daemon_json, {'debug': True})['existed'] is False
    assert apply(daemon_json, {'debug': True})['existed'] is True
    assert apply(daemon_json, {'debug': False}, check_mode=True)['existed'] is True


def test_no_backup_when_disabled_or_no_file(daemon_json):
    result = apply(daemon_json, {'debug': True})
    assert 'backup_file' not in result
    result = apply(daemon_json, {'debug': False}, backup=False)
    assert 'backup_file' not in result
    assert not [name for name in dir_listing(daemon_json.parent) if name.endswith('.bak')]


# ---------------------------------------------------------------------------
# Validation on the host
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('settings,fragment', [
    ({'registry-mirrors': ['https://mirror.example.com/v2']},
     "invalid value for 'registry-mirrors[0]': got \"https://mirror.example.com/v2\", expected an https:// URL"),
    ({'log-opts': {'max-file': 3}},
     "invalid value for 'log-opts.max-file': got 3, expected a string; dockerd accepts only strings "
     "in log-opts, quote it: \"3\""),
    ({'default-runtime': 'nvidia'},
     "invalid value for 'default-runtime': got \"nvidia\", expected a runtime defined under \"runtimes\""),
    ({'live-restore': 'true'}, "invalid value for 'live-restore': got \"true\", expected a JSON boolean"),
    ({'hosts': 'unix:///var/run/docker.sock'}, "'hosts': got \"unix:///var/run/docker.sock\""),
    ({'log-opt': {'max-size': '10m'}}, "'log-opt': it is not a daemon.json key dockerd knows"),
])
def test_validation_rejects_and_touches_nothing(daemon_json, settings, fragment):
    daemon_json.parent.mkdir()
    original = '{"debug": true}'
    daemon_json.write_text(original, encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(daemon_json, settings)
    assert fragment in str(info.value)
    assert str(info.value).startswith('docker_daemon: ')
    assert info.value.details['errors'] == [str(info.value)]
    assert daemon_json.read_text(encoding='utf-8') == original
    assert dir_listing(daemon_json.parent) == ['daemon.json']


def test_existing_invalid_value_is_a_warning_when_not_managed(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'log-opts': {'max-file': 3}})
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is True
    assert read_json(daemon_json) == {'log-opts': {'max-file': 3}, 'debug': True}
    assert [w for w in result['warnings'] if 'quote it' in w and 'gpuhost does not manage this key' in w]
    # and the role can repair it by managing the key
    result = apply(daemon_json, {'log-opts': {'max-file': '3'}})
    assert read_json(daemon_json) == {'log-opts': {'max-file': '3'}, 'debug': True}
    assert result['warnings'] == []


def test_host_only_invalid_value_warns_and_the_same_in_settings_fails(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': 'yes'})
    result = apply(daemon_json, {'live-restore': True})
    assert result['changed'] is True
    assert read_json(daemon_json) == {'debug': 'yes', 'live-restore': True}
    assert len(result['warnings']) == 1
    assert "invalid value for 'debug': got \"yes\"" in result['warnings'][0]
    with pytest.raises(Error, match="invalid value for 'debug': got \"yes\""):
        apply(daemon_json, {'debug': 'yes'})


def test_host_only_http_mirror_is_a_warning(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'registry-mirrors': ['http://mirror.local'], 'data-root': '/srv/docker'})
    result = apply(daemon_json, {'debug': True, 'log-driver': 'local'})
    assert result['changed'] is True
    assert read_json(daemon_json)['registry-mirrors'] == ['http://mirror.local']
    assert result['warnings'] == ["docker_daemon: 'registry-mirrors[0]' is \"http://mirror.local\": it is plain "
                                  "http: images come without TLS."]


def test_http_mirror_in_settings_needs_allow_insecure(daemon_json):
    with pytest.raises(Error) as info:
        apply(daemon_json, {'registry-mirrors': ['http://mirror.local']})
    assert str(info.value) == ("docker_daemon: 'registry-mirrors[0]' is \"http://mirror.local\": it is plain http: "
                               "images come without TLS. Use an https mirror, or %s to accept it." % INSECURE_HINT)
    assert not daemon_json.exists()
    result = apply(daemon_json, {'registry-mirrors': ['http://mirror.local']}, allow_insecure=True)
    assert read_json(daemon_json) == {'registry-mirrors': ['http://mirror.local']}
    assert result['warnings'] == ["docker_daemon: 'registry-mirrors[0]' is \"http://mirror.local\": it is plain "
                                  "http: images come without TLS (accepted because insecure settings are allowed)."]


def test_insecure_registries_refused_without_allow_insecure(daemon_json):
    with pytest.raises(Error) as info:
        apply(daemon_json, {'insecure-registries': ['registry.local:5000']})
    assert "'insecure-registries' is [\"registry.local:5000\"]" in str(info.value)
    assert INSECURE_HINT in str(info.value)
    assert not daemon_json.exists()


def test_insecure_registries_warned_with_allow_insecure(daemon_json):
    result = apply(daemon_json, {'insecure-registries': ['registry.local:5000']}, allow_insecure=True)
    assert result['changed'] is True
    assert read_json(daemon_json) == {'insecure-registries': ['registry.local:5000']}
    assert len(result['warnings']) == 1
    assert 'insecure-registries' in result['warnings'][0]


TCP_ENTRIES = ['0.0.0.0:2375', ':2375', '127.0.0.1:2375', 'TCP://x:2375', 'tcp://0.0.0.0:2375',
               'ssh://admin@gpu-host']


@pytest.mark.parametrize('entry', TCP_ENTRIES)
@pytest.mark.parametrize('extra', [{}, {'tls': True}, {'tlsverify': False}], ids=['plain', 'tls', 'tlsverify-false'])
def test_tcp_host_without_tlsverify_refused(daemon_json, entry, extra):
    settings = dict({'hosts': ['unix:///var/run/docker.sock', entry]}, **extra)
    with pytest.raises(Error) as info:
        apply(daemon_json, settings)
    assert ("'hosts' has [\"%s\"], a TCP socket without tlsverify: anyone who can reach it gets root on this host"
            % entry) in str(info.value)
    assert not daemon_json.exists()
    result = apply(daemon_json, settings, allow_insecure=True)
    assert result['changed'] is True
    assert [w for w in result['warnings'] if entry in w and 'accepted because insecure settings are allowed' in w]


@pytest.mark.parametrize('hosts', [['unix:///var/run/docker.sock'], ['fd://'], ['unix:///run/docker.sock', 'fd://']])
def test_local_sockets_are_fine(daemon_json, hosts):
    result = apply(daemon_json, {'hosts': hosts})
    assert result['changed'] is True
    assert result['warnings'] == []


@pytest.mark.parametrize('entry', TCP_ENTRIES)
def test_tcp_host_with_tlsverify_is_fine(daemon_json, entry):
    result = apply(daemon_json, {'hosts': [entry], 'tlsverify': True, 'tlscacert': '/etc/docker/ca.pem'})
    assert result['warnings'] == []
    # tlsverify already on the host counts too
    assert apply(daemon_json, {'hosts': [entry, 'fd://']})['warnings'] == []


@pytest.mark.parametrize('entry', ['tcp://0.0.0.0:2376', '0.0.0.0:2376'])
@pytest.mark.parametrize('flag,accepted', [
    ('--tlsverify', True), ('--tlsverify=true', True), ('--tlsverify=false', False), ('--tls', False)])
def test_tlsverify_flag_in_the_unit_counts_for_tcp_hosts(daemon_json, tmp_path, entry, flag, accepted):
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nExecStart=/usr/bin/dockerd %s --tlscacert=/etc/docker/ca.pem\n' % flag,
                    encoding='utf-8')
    if accepted:
        result = apply(daemon_json, {'hosts': [entry]}, unit_paths=[str(unit)])
        assert result['changed'] is True
        assert result['warnings'] == []
    else:
        with pytest.raises(Error, match='a TCP socket without tlsverify'):
            apply(daemon_json, {'hosts': [entry]}, unit_paths=[str(unit)])


@pytest.mark.parametrize('key,value,suggestion', [
    ('log-opt', {'max-size': '10m'}, 'log-opts'),
    ('Debug', True, 'debug'),
    ('registry-mirror', ['https://mirror.example.com'], 'registry-mirrors'),
])
def test_misspelt_key_is_refused_unless_listed_as_extra(daemon_json, key, value, suggestion):
    with pytest.raises(Error) as info:
        apply(daemon_json, {key: value})
    assert did_you_mean(suggestion).search(str(info.value))
    assert 'docker_daemon_extra_keys' in str(info.value)
    assert not daemon_json.exists()
    result = apply(daemon_json, {key: value}, extra_keys=[key])
    assert result['changed'] is True
    assert read_json(daemon_json) == {key: value}


def test_unknown_keys_only_the_host_has_are_kept(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'x-vendor': {'a': [1, None]}, 'log-opt': 'x'})
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is True
    assert result['warnings'] == []
    assert read_json(daemon_json) == {'x-vendor': {'a': [1, None]}, 'log-opt': 'x', 'debug': True}
    # and gpuhost may remove one
    apply(daemon_json, {'log-opt': None})
    assert read_json(daemon_json) == {'x-vendor': {'a': [1, None]}, 'debug': True}


# The preflight (the role's filter) and the module must judge every mirror the same way.
MIRROR_CASES = [
    ('https://user:pw@mirror.example.com', 'refused'),
    ('HTTPS://mirror.example.com', 'accepted'),
    ('https://mirror.example.com:99999', 'refused'),
    ('https://mirror.example.com:443', 'accepted'),
    ('https://mirror.example.com/', 'accepted'),
    ('https://mirror.example.com/path', 'refused'),
    ('https://mirror.example.com?x', 'refused'),
    ('https://mirror.example.com#f', 'refused'),
    ('https://mirror.example.com\n', 'refused'),
    (' https://mirror.example.com', 'refused'),
    ('https://mirror .example.com', 'refused'),
    ('http://mirror.example.com', 'insecure'),
    ('ftp://mirror.example.com', 'refused'),
    ('https://', 'refused'),
    ('', 'refused'),
]


@pytest.mark.parametrize('allow_insecure', [False, True], ids=['strict', 'allow-insecure'])
@pytest.mark.parametrize('url,outcome', MIRROR_CASES, ids=[repr(url) for url, _ in MIRROR_CASES])
def test_preflight_and_module_judge_mirrors_alike(tmp_path, url, outcome, allow_insecure):
    expected = outcome == 'accepted' or (outcome == 'insecure' and allow_insecure)
    settings = {'registry-mirrors': [url]}

    preflight = docker_daemon_settings_problems(settings, allow_insecure)
    preflight_accepts = preflight['errors'] == []

    target = tmp_path / 'daemon.json'
    try:
        result = apply(target, settings, allow_insecure=allow_insecure)
    except Error as exc:
        module_accepts, module_warnings = False, []
        assert 'registry-mirrors[0]' in str(exc)
    else:
        module_accepts, module_warnings = True, result['warnings']
        assert read_json(target) == settings

    assert (preflight_accepts, module_accepts) == (expected, expected)
    if expected and outcome == 'insecure':
        assert len(preflight['warnings']) == 1 and len(module_warnings) == 1


# ---------------------------------------------------------------------------
# Unit file flags through the module
# ---------------------------------------------------------------------------

STOCK_UNIT = """\
[Unit]
Description=Docker Application Container Engine
# ExecStart=/usr/bin/dockerd --debug  (a comment)

[Service]
Type=notify
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
"""


@pytest.fixture
def units(tmp_path):
    lib = tmp_path / 'lib' / 'docker.service'
    lib.parent.mkdir()
    lib.write_text(STOCK_UNIT, encoding='utf-8')
    dropins = tmp_path / 'etc' / 'docker.service.d'
    dropins.mkdir(parents=True)
    return {'lib': lib, 'dropins': dropins, 'paths': [str(lib), str(dropins)]}


def add_mirror_dropin(units):
    conf = units['dropins'] / '10-mirror.conf'
    conf.write_text(
        '[Service]\n'
        'ExecStart=\n'
        'ExecStart=/usr/bin/dockerd -H fd:// \\\n'
        '    --containerd=/run/containerd/containerd.sock \\\n'
        '    --registry-mirror=https://x\n',
        encoding='utf-8')
    return conf


def test_stock_unit_alone_is_no_conflict(daemon_json, units):
    result = apply(daemon_json, {'debug': True, 'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}}},
                   unit_paths=units['paths'])
    assert result['changed'] is True


def test_hosts_key_conflicts_with_stock_unit_flag(daemon_json, units):
    with pytest.raises(Error) as info:
        apply(daemon_json, {'hosts': ['unix:///var/run/docker.sock']}, unit_paths=units['paths'])
    assert str(info.value) == (
        "docker_daemon: 'hosts' is set in daemon.json and as flag '-H' in %s; dockerd refuses to start "
        "when an option is given both ways. Remove the flag from %s (then systemctl daemon-reload) or "
        "drop the key." % (units['lib'], units['lib']))
    assert info.value.details['conflicts'] == [{'key': 'hosts', 'flag': '-H', 'unit_file': str(units['lib'])}]
    assert not daemon_json.exists()


def test_dropin_with_reset_and_continuation_conflicts(daemon_json, units):
    conf = add_mirror_dropin(units)
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    original = daemon_json.read_bytes()
    with pytest.raises(Error) as info:
        apply(daemon_json, {'registry-mirrors': ['https://mirror.example.com']}, unit_paths=units['paths'])
    msg = str(info.value)
    assert "'registry-mirrors' is set in daemon.json and as flag '--registry-mirror' in %s;" % conf in msg
    assert 'Remove the flag from %s (then systemctl daemon-reload) or drop the key.' % conf in msg
    assert daemon_json.read_bytes() == original
    # the key existing in the file (not only in settings) counts too
    write_json(daemon_json, {'registry-mirrors': ['https://mirror.example.com']})
    with pytest.raises(Error, match="'registry-mirrors' is set in daemon.json"):
        apply(daemon_json, {'debug': True}, unit_paths=units['paths'])


def test_shell_wrapped_dockerd_flag_conflicts(daemon_json, tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nExecStart=/bin/sh -c "exec /usr/bin/dockerd --registry-mirror=https://x"\n',
                    encoding='utf-8')
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'registry-mirrors': ['https://mirror.example.com']})
    with pytest.raises(Error) as info:
        apply(daemon_json, {'debug': True}, unit_paths=[str(unit)])
    assert info.value.details['conflicts'] == [
        {'key': 'registry-mirrors', 'flag': '--registry-mirror', 'unit_file': str(unit)}]
    assert read_json(daemon_json) == {'registry-mirrors': ['https://mirror.example.com']}


def test_tlsverify_flag_then_hosts_flag_conflicts_on_hosts_only(daemon_json, tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nExecStart=/usr/bin/dockerd --tlsverify -H tcp://0.0.0.0:2376 '
                    '--tlscacert=/etc/docker/ca.pem --tlscert=/etc/docker/cert.pem --tlskey=/etc/docker/key.pem\n',
                    encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(daemon_json, {'hosts': ['tcp://0.0.0.0:2376']}, unit_paths=[str(unit)])
    assert info.value.details['conflicts'] == [{'key': 'hosts', 'flag': '-H', 'unit_file': str(unit)}]
    assert 'errors' not in info.value.details
    assert len(str(info.value).splitlines()) == 1


def test_reset_drops_flags_of_earlier_exec_start(daemon_json, units):
    units['lib'].write_text(STOCK_UNIT.replace('-H fd://', '-H fd:// --log-level debug'), encoding='utf-8')
    with pytest.raises(Error, match="'log-level' is set in daemon.json and as flag '--log-level'"):
        apply(daemon_json, {'log-level': 'info'}, unit_paths=units['paths'])
    add_mirror_dropin(units)
    assert apply(daemon_json, {'log-level': 'info'}, unit_paths=units['paths'])['changed'] is True


def test_etc_unit_overrides_lib_unit(daemon_json, units, tmp_path):
    etc_unit = tmp_path / 'etc' / 'docker.service'
    etc_unit.write_text('[Service]\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock\n',
                        encoding='utf-8')
    paths = [str(units['lib']), str(etc_unit), str(units['dropins'])]
    assert apply(daemon_json, {'hosts': ['fd://']}, unit_paths=paths)['changed'] is True
    with pytest.raises(Error, match="as flag '-H'"):
        apply(daemon_json, {'hosts': ['fd://']}, unit_paths=[str(etc_unit), str(units['lib'])])


def test_other_config_file_in_unit_warns(daemon_json, tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nExecStart=/usr/bin/dockerd --config-file /opt/docker.json\n', encoding='utf-8')
    result = apply(daemon_json, {'debug': True}, unit_paths=[str(unit)])
    assert any('--config-file /opt/docker.json' in w for w in result['warnings'])
    unit.write_text('[Service]\nExecStart=/usr/bin/dockerd --config-file=%s\n' % daemon_json, encoding='utf-8')
    assert apply(daemon_json, {'debug': False}, unit_paths=[str(unit)])['warnings'] == []


DEBIAN_UNIT = """\
[Service]
Type=notify
EnvironmentFile=-%s
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
"""


def test_debian_docker_opts_without_environment_file_is_no_conflict(daemon_json, tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text(DEBIAN_UNIT % (tmp_path / 'missing-default'), encoding='utf-8')
    assert apply(daemon_json, {'dns': ['1.1.1.1'], 'debug': True}, unit_paths=[str(unit)])['changed'] is True


def test_flags_in_environment_file_conflict(daemon_json, tmp_path):
    default = tmp_path / 'default-docker'
    default.write_text(
        '# Docker options\n'
        '#DOCKER_OPTS="--debug"\n'
        'DOCKER_OPTS="--dns 8.8.8.8 --registry-mirror=https://m.example.com"\n'
        'export http_proxy="http://proxy:3128/"\n',
        encoding='utf-8')
    unit = tmp_path / 'docker.service'
    unit.write_text(DEBIAN_UNIT % default, encoding='utf-8')
    assert apply(daemon_json, {'debug': True}, unit_paths=[str(unit)])['changed'] is True
    with pytest.raises(Error) as info:
        apply(daemon_json, {'dns': ['1.1.1.1']}, unit_paths=[str(unit)])
    assert str(info.value) == (
        "docker_daemon: 'dns' is set in daemon.json and as flag '--dns' in %s ($DOCKER_OPTS); dockerd "
        "refuses to start when an option is given both ways. Remove the flag from %s or drop the key."
        % (default, default))
    assert info.value.details['conflicts'] == [{'key': 'dns', 'flag': '--dns', 'unit_file': str(default)}]


def test_flags_in_environment_directive_conflict(daemon_json, tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text(DEBIAN_UNIT % (tmp_path / 'missing-default'), encoding='utf-8')
    dropins = tmp_path / 'docker.service.d'
    dropins.mkdir()
    conf = dropins / 'debug.conf'
    conf.write_text('[Service]\nEnvironment="DOCKER_OPTS=--debug --label a=b" OTHER=1\n', encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(daemon_json, {'debug': True, 'labels': ['x=y']}, unit_paths=[str(unit), str(dropins)])
    assert [(c['key'], c['flag'], c['unit_file']) for c in info.value.details['conflicts']] == [
        ('debug', '--debug', str(conf)), ('labels', '--label', str(conf))]
    assert 'in %s ($DOCKER_OPTS); ' % conf in str(info.value)
    assert '(then systemctl daemon-reload)' in str(info.value)
    # an empty Environment= in a later drop-in resets the assignments
    (dropins / 'reset.conf').write_text('[Service]\nEnvironment=\n', encoding='utf-8')
    assert apply(daemon_json, {'debug': True}, unit_paths=[str(unit), str(dropins)])['changed'] is True


def test_missing_unit_paths_are_fine(daemon_json, tmp_path):
    result = apply(daemon_json, {'hosts': ['fd://']},
                   unit_paths=[str(tmp_path / 'nope.service'), str(tmp_path / 'nope.d')])
    assert result['changed'] is True


# ---------------------------------------------------------------------------
# Reload and live-restore in the result
# ---------------------------------------------------------------------------

def test_reload_sufficient_in_result(daemon_json):
    result = apply(daemon_json, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}},
                                 'default-runtime': 'nvidia'})
    assert result['changed_keys'] == ['default-runtime', 'runtimes']
    assert result['reload_sufficient'] is True
    result = apply(daemon_json, {'log-driver': 'local'})
    assert result['reload_sufficient'] is False


def test_live_restore_unsafe_keys_in_result(daemon_json):
    result = apply(daemon_json, {'data-root': '/srv/docker', 'bip': '10.99.0.1/24', 'debug': True})
    assert result['live_restore_unsafe_keys'] == ['bip', 'data-root']
    assert apply(daemon_json, {'debug': False})['live_restore_unsafe_keys'] == []


# ---------------------------------------------------------------------------
# Property test
# ---------------------------------------------------------------------------



@hyp_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_apply_twice_is_stable(tmp_path_factory, existing, settings):
    path = tmp_path_factory.mktemp('prop') / 'daemon.json'
    path.write_text(json.dumps(existing), encoding='utf-8')
    first = apply(path, settings, backup=False, extra_keys=list(settings))
    content = path.read_bytes()
    second = apply(path, settings, backup=False, extra_keys=list(settings))
    assert second['changed'] is False
    assert path.read_bytes() == content
    assert ddc.config_equal(read_json(path), first['config'])


# ---------------------------------------------------------------------------
# Backups, temporary files, check mode, dockerd validation
# ---------------------------------------------------------------------------

def test_backup_keeps_old_content(daemon_json):
    daemon_json.parent.mkdir()
    old = '{ "data-root": "/srv/docker" }'
    daemon_json.write_text(old, encoding='utf-8')
    now = datetime.datetime(2024, 5, 6, 7, 8, 9)
    result = apply(daemon_json, {'debug': True}, now=now)
    assert result['backup_file'] == '%s.20240506T070809.bak' % daemon_json
    assert result['rollback_file'] == result['backup_file']
    assert Path(result['backup_file']).read_text(encoding='utf-8') == old
    # a second backup in the same second does not overwrite the first
    result2 = apply(daemon_json, {'debug': False}, now=now)
    assert result2['backup_file'] == '%s.20240506T070809.1.bak' % daemon_json
    assert Path(result['backup_file']).read_text(encoding='utf-8') == old
    assert json.loads(Path(result2['backup_file']).read_text(encoding='utf-8'))['debug'] is True


def make_backups(daemon_json, count, backup_keep, start=datetime.datetime(2024, 1, 1)):
    results = []
    for day in range(count):
        results.append(apply(daemon_json, {'labels': ['run=%d' % day]}, backup_keep=backup_keep,
                             now=start + datetime.timedelta(days=day)))
    return results


def backups(daemon_json):
    return sorted(str(daemon_json.parent / n) for n in os.listdir(daemon_json.parent) if n.endswith('.bak'))


def test_backup_rotation_keeps_the_newest(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    results = make_backups(daemon_json, 7, backup_keep=5)
    made = [r['backup_file'] for r in results]
    assert backups(daemon_json) == made[2:]
    assert results[5]['removed_backups'] == [made[0]]
    assert results[6]['removed_backups'] == [made[1]]
    assert results[4].get('removed_backups', []) == []
    assert Path(made[-1]).exists() and Path(results[-1]['rollback_file']).exists()


def test_backup_keep_zero_keeps_every_backup(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    results = make_backups(daemon_json, 7, backup_keep=0)
    assert backups(daemon_json) == [r['backup_file'] for r in results]
    assert not any(r.get('removed_backups') for r in results)


def test_backup_rotation_never_removes_the_backup_just_made(daemon_json):
    # Backups stamped by a clock that ran ahead (before NTP set it right) sort after the
    # new one; the copy this run keeps for a rollback must survive the rotation anyway.
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    make_backups(daemon_json, 5, backup_keep=5, start=datetime.datetime(2030, 1, 1))
    result = apply(daemon_json, {'labels': ['run=late']}, backup_keep=5, now=datetime.datetime(2024, 1, 1))
    assert Path(result['rollback_file']).exists()
    assert json.loads(Path(result['rollback_file']).read_text(encoding='utf-8'))['labels'] == ['run=4']


def test_orphaned_temp_files_are_removed_by_a_real_run(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    orphans = [daemon_json.parent / '.daemon.json.k1ll3d.tmp', daemon_json.parent / '.daemon.json.abcdef.tmp']
    for orphan in orphans:
        orphan.write_text('{"debug": fal', encoding='utf-8')
    checked = apply(daemon_json, {'debug': False}, check_mode=True)
    assert 'removed_temp_files' not in checked
    assert all(orphan.exists() for orphan in orphans)
    result = apply(daemon_json, {'debug': True})
    assert result['changed'] is False
    assert result['removed_temp_files'] == sorted(str(o) for o in orphans)
    assert dir_listing(daemon_json.parent) == ['daemon.json']
    orphans[0].write_text('x', encoding='utf-8')
    result = apply(daemon_json, {'debug': False})
    assert result['removed_temp_files'] == [str(orphans[0])]
    assert not orphans[0].exists()
    assert apply(daemon_json, {'debug': False})['removed_temp_files'] == []


def test_check_mode_writes_nothing(daemon_json):
    daemon_json.parent.mkdir()
    original = '{"data-root": "/srv/docker"}'
    daemon_json.write_text(original, encoding='utf-8')
    result = apply(daemon_json, {'debug': True}, check_mode=True)
    assert result['changed'] is True
    assert result['changed_keys'] == ['debug']
    assert result['config'] == {'data-root': '/srv/docker', 'debug': True}
    assert result['diff']['after'] == '{\n    "data-root": "/srv/docker",\n    "debug": true\n}\n'
    assert result['diff']['before'] == original
    assert 'backup_file' not in result
    assert 'rollback_file' not in result
    assert daemon_json.read_text(encoding='utf-8') == original
    assert dir_listing(daemon_json.parent) == ['daemon.json']


def test_check_mode_does_not_create_directory(tmp_path):
    target = tmp_path / 'docker' / 'daemon.json'
    result = apply(target, {'debug': True}, check_mode=True)
    assert result['changed'] is True
    assert not target.parent.exists()


def fake_dockerd(tmp_path, help_text, rc, message):
    script = tmp_path / 'fake-dockerd'
    script.write_text(
        '#!/bin/sh\n'
        'if [ "$1" = "--help" ]; then echo "%s"; exit 0; fi\n'
        'echo "$@" > "%s"\n'
        'cat "$3" >> "%s"\n'
        'echo "%s" >&2\n'
        'exit %d\n' % (help_text, tmp_path / 'called', tmp_path / 'called', message, rc),
        encoding='utf-8')
    script.chmod(0o755)
    return str(script)


def recording_validator(tmp_path):
    """A validate command that records the file it gets, its directory and their modes."""
    record = tmp_path / 'record'
    script = tmp_path / 'validate'
    script.write_text(
        '#!/bin/sh\n'
        'f="$1"\n'
        '{ echo "$f"; stat -c %%a "$f"; stat -c %%a "$(dirname "$f")"; ls -A "$(dirname "$f")"; cat "$f"; } > "%s"\n'
        % record, encoding='utf-8')
    script.chmod(0o755)
    return [str(script)], record


def test_check_mode_validates_a_private_copy(daemon_json, tmp_path):
    daemon_json.parent.mkdir()
    original = '{"data-root": "/srv/docker"}'
    daemon_json.write_text(original, encoding='utf-8')
    cmd, record = recording_validator(tmp_path)
    result = apply(daemon_json, {'live-restore': True}, validate_cmd=cmd, check_mode=True)
    assert result['validated'] is True
    path, file_mode, dir_mode, listing, content = record.read_text(encoding='utf-8').split('\n', 4)
    assert (file_mode, dir_mode) == ('600', '700')
    assert os.path.basename(path) == 'daemon.json'
    assert listing == 'daemon.json'
    assert os.path.dirname(path) != str(daemon_json.parent)
    assert json.loads(content) == {'data-root': '/srv/docker', 'live-restore': True}
    assert not os.path.exists(os.path.dirname(path))
    assert daemon_json.read_text(encoding='utf-8') == original
    assert dir_listing(daemon_json.parent) == ['daemon.json']


def test_dockerd_rejection_leaves_live_file_untouched(daemon_json, tmp_path):
    daemon_json.parent.mkdir()
    original = '{"debug": true}'
    daemon_json.write_text(original, encoding='utf-8')
    dockerd = fake_dockerd(tmp_path, '--validate  Validate daemon configuration and exit', 1,
                           'unable to configure the Docker daemon: unknown option')
    cmd = ddc.resolve_validate_cmd('auto', dockerd)
    assert cmd == [dockerd, '--validate', '--config-file']
    with pytest.raises(Error) as info:
        apply(daemon_json, {'live-restore': True}, validate_cmd=cmd)
    msg = str(info.value)
    assert msg.startswith('docker_daemon: dockerd rejected the new configuration for %s' % daemon_json)
    assert 'the live file was left untouched' in msg
    assert 'unable to configure the Docker daemon: unknown option' in msg
    assert info.value.details['rc'] == 1
    assert daemon_json.read_text(encoding='utf-8') == original
    assert dir_listing(daemon_json.parent) == ['daemon.json']
    called = (tmp_path / 'called').read_text(encoding='utf-8')
    # the candidate was written next to the live file and held the merged data
    assert called.startswith('--validate --config-file %s/.daemon.json.' % daemon_json.parent)
    assert '"live-restore": true' in called


def test_dockerd_acceptance_writes(daemon_json, tmp_path):
    dockerd = fake_dockerd(tmp_path, '--validate', 0, 'configuration OK')
    cmd = ddc.resolve_validate_cmd('always', dockerd)
    result = apply(daemon_json, {'live-restore': True}, validate_cmd=cmd)
    assert result['validated'] is True
    assert read_json(daemon_json) == {'live-restore': True}


def test_dockerd_validation_in_check_mode_writes_nothing(daemon_json, tmp_path):
    dockerd = fake_dockerd(tmp_path, '--validate', 1, 'bad config')
    cmd = ddc.resolve_validate_cmd('auto', dockerd)
    with pytest.raises(Error, match='dockerd said: bad config'):
        apply(daemon_json, {'live-restore': True}, validate_cmd=cmd, check_mode=True)
    assert not daemon_json.parent.exists()


def test_dockerd_not_run_when_nothing_changes(daemon_json, tmp_path):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"debug": true}', encoding='utf-8')
    dockerd = fake_dockerd(tmp_path, '--validate', 1, 'bad config')
    result = apply(daemon_json, {'debug': True}, validate_cmd=[dockerd, '--validate', '--config-file'])
    assert result['changed'] is False
    assert not (tmp_path / 'called').exists()


def test_validate_modes_without_support(tmp_path):
    old = fake_dockerd(tmp_path, 'Usage: dockerd [OPTIONS]', 0, '')
    assert ddc.resolve_validate_cmd('auto', old) is None
    assert ddc.resolve_validate_cmd('never', old) is None
    with pytest.raises(Error, match='validate_with_dockerd=always but .* does not support --validate'):
        ddc.resolve_validate_cmd('always', old)
    assert ddc.resolve_validate_cmd('auto', None) is None
    with pytest.raises(Error, match='validate_with_dockerd=always but dockerd was not found'):
        ddc.resolve_validate_cmd('always', None)


def test_validate_uses_injected_runner():
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, 'Options:\n      --validate   Validate daemon configuration and exit\n', ''

    assert ddc.resolve_validate_cmd('auto', '/usr/bin/dockerd', run=run) == [
        '/usr/bin/dockerd', '--validate', '--config-file']
    assert calls == [['/usr/bin/dockerd', '--help']]


# ---------------------------------------------------------------------------
# main()
# ---------------------------------------------------------------------------

def module_args(path, settings, **extra):
    return dict({'path': str(path), 'settings': settings, 'unit_paths': [], 'validate_with_dockerd': 'never'},
                **extra)


def test_main_passes_extra_keys_and_backup_keep(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'debug': True})
    with pytest.raises(ModuleFail) as info:
        run_main(ddc, module_args(daemon_json, {'log-opt': {'max-size': '1m'}}))
    assert did_you_mean('log-opts').search(info.value.result['msg'])
    assert info.value.result['errors'] == [info.value.result['msg']]
    assert info.value.result['path'] == str(daemon_json)
    for day in range(3):
        result = run_main(ddc, module_args(daemon_json, {'log-opt': {'max-size': '%dm' % day}},
                                           extra_keys=['log-opt'], backup_keep=1))
        assert result['changed'] is True
    assert len(backups(daemon_json)) == 1
    assert 'diff' not in result and 'warnings' not in result


def test_main_check_mode_with_diff(daemon_json):
    result = run_main(ddc, module_args(daemon_json, {'debug': True}), check_mode=True, diff=True)
    assert result['changed'] is True
    assert result['existed'] is False
    assert result['diff']['after'] == '{\n    "debug": true\n}\n'
    assert 'removed_temp_files' not in result
    assert not daemon_json.exists()


# ---------------------------------------------------------------------------
# Through Ansible
# ---------------------------------------------------------------------------

def test_through_ansible(tmp_path):
    target = tmp_path / 'docker' / 'daemon.json'
    target.parent.mkdir()
    target.write_text(NVIDIA_CTK_TEXT, encoding='utf-8')
    args = {
        'path': str(target),
        'settings': {'default-runtime': 'nvidia', 'log-opts': {'max-size': '100m', 'max-file': '3'},
                     'experimental': None},
        'unit_paths': [str(tmp_path / 'no-units')],
        'validate_with_dockerd': 'auto',
    }

    _, checked = run_adhoc('docker_daemon_config', args, tmp_path, '--check', '--diff')
    assert checked.get('failed') is not True, checked
    assert checked['changed'] is True
    assert checked['changed_keys'] == ['default-runtime', 'log-opts']
    assert checked['reload_sufficient'] is False
    assert checked['diff']['before'] == NVIDIA_CTK_TEXT
    assert '"default-runtime": "nvidia"' in checked['diff']['after']
    assert checked['diff']['before_header'] == str(target)
    assert target.read_text(encoding='utf-8') == NVIDIA_CTK_TEXT

    _, applied = run_adhoc('docker_daemon_config', args, tmp_path)
    assert applied.get('failed') is not True, applied
    assert applied['changed'] is True
    assert 'diff' not in applied
    assert read_json(target) == {
        'runtimes': {'nvidia': {'args': [], 'path': 'nvidia-container-runtime'}},
        'default-runtime': 'nvidia',
        'log-opts': {'max-size': '100m', 'max-file': '3'},
    }
    assert applied['config'] == read_json(target)
    assert Path(applied['backup_file']).read_text(encoding='utf-8') == NVIDIA_CTK_TEXT
    assert applied['rollback_file'] == applied['backup_file']

    _, again = run_adhoc('docker_daemon_config', args, tmp_path)
    assert again['changed'] is False

    rc, failed = run_adhoc('docker_daemon_config', dict(args, settings={'log-opts': {'max-file': 3}}), tmp_path)
    assert rc != 0
    assert failed['failed'] is True
    assert "quote it: \"3\"" in failed['msg']
    assert failed['errors'] == [failed['msg']]
