"""Tests for the docker_daemon_config module (gpuhost_cli/ansible_plugins/modules)."""

import datetime
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_loader import MODULES_DIR, load_module
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def daemon_json(tmp_path):
    return tmp_path / 'docker' / 'daemon.json'


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
    daemon_json.write_text('{"zeta": 1, "alpha": {"b": 1, "a": 2}, "mid": "x"}\n', encoding='utf-8')
    first = apply(daemon_json, {'new-b': 'b', 'alpha': {'c': 3}, 'new-a': 'a'})
    assert first['changed'] is True
    text = daemon_json.read_text(encoding='utf-8')
    assert list(json.loads(text)) == ['zeta', 'alpha', 'mid', 'new-b', 'new-a']
    assert list(json.loads(text)['alpha']) == ['b', 'a', 'c']
    assert text == ddc.format_config(first['config'])
    assert text.endswith('}\n') and '\n    "zeta": 1,' in text

    first_bytes = daemon_json.read_bytes()
    first_mtime = daemon_json.stat().st_mtime_ns
    second = apply(daemon_json, {'new-b': 'b', 'alpha': {'c': 3}, 'new-a': 'a'})
    assert second['changed'] is False
    assert second['changed_keys'] == []
    assert second['reload_sufficient'] is False
    assert daemon_json.read_bytes() == first_bytes
    assert daemon_json.stat().st_mtime_ns == first_mtime
    assert 'backup_file' not in second


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


def test_bom_file_with_equal_data_is_not_rewritten(daemon_json):
    daemon_json.parent.mkdir()
    content = b'\xef\xbb\xbf{"debug": true}'
    daemon_json.write_bytes(content)
    assert apply(daemon_json, {'debug': True})['changed'] is False
    assert daemon_json.read_bytes() == content


def test_missing_file_and_directory_are_created(tmp_path):
    target = tmp_path / 'etc' / 'docker' / 'daemon.json'
    result = apply(target, {'live-restore': True})
    assert result['changed'] is True
    assert read_json(target) == {'live-restore': True}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert 'backup_file' not in result
    assert result['diff']['before'] == ''


def test_written_file_mode_is_0644(daemon_json):
    daemon_json.parent.mkdir()
    daemon_json.write_text('{}', encoding='utf-8')
    daemon_json.chmod(0o600)
    apply(daemon_json, {'debug': True}, backup=False)
    assert stat.S_IMODE(daemon_json.stat().st_mode) == 0o644
    if os.geteuid() == 0:
        assert (daemon_json.stat().st_uid, daemon_json.stat().st_gid) == (0, 0)


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
    result = apply(daemon_json, {'debug': True, 'x-vendor': {'k2999': {'name': 'changed'}}})
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
    link_dir = tmp_path / 'etc-docker'
    link_dir.mkdir()
    link = link_dir / 'daemon.json'
    link.symlink_to(os.path.relpath(real, link_dir))

    result = apply(link, {'debug': True})
    assert link.is_symlink()
    assert os.readlink(link) == os.path.relpath(real, link_dir)
    assert read_json(real) == {'data-root': '/srv/docker', 'debug': True}
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
# Validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('settings,fragment', [
    ({'registry-mirrors': ['http://mirror.example.com']},
     "invalid value for 'registry-mirrors[0]': got \"http://mirror.example.com\", expected an https:// URL"),
    ({'registry-mirrors': ['https://mirror.example.com/v2']}, "'registry-mirrors[0]'"),
    ({'registry-mirrors': ['https://mirror.example.com/?x=1']}, "'registry-mirrors[0]'"),
    ({'registry-mirrors': ['https://mirror.example.com#frag']}, "'registry-mirrors[0]'"),
    ({'registry-mirrors': ['https://']}, "'registry-mirrors[0]'"),
    ({'registry-mirrors': ['mirror.example.com']}, "'registry-mirrors[0]'"),
    ({'registry-mirrors': 'https://mirror.example.com'},
     "invalid value for 'registry-mirrors': got \"https://mirror.example.com\", expected a list of strings"),
    ({'registry-mirrors': [5]}, "'registry-mirrors[0]': got 5, expected a string"),
    ({'log-opts': {'max-file': 3}},
     "invalid value for 'log-opts.max-file': got 3, expected a string; dockerd accepts only strings "
     "in log-opts, quote it: \"3\""),
    ({'log-opts': {'compress': True}}, 'quote it: "true"'),
    ({'log-opts': ['max-size=10m']}, "invalid value for 'log-opts'"),
    ({'runtimes': {'nvidia': {'args': []}}},
     "invalid value for 'runtimes.nvidia.path': got null, expected a non-empty string"),
    ({'runtimes': {'nvidia': {'path': ''}}}, "'runtimes.nvidia.path': got \"\""),
    ({'runtimes': {'nvidia': {'path': 'x', 'runtimeArgs': '--debug'}}},
     "'runtimes.nvidia.runtimeArgs': got \"--debug\", expected a list of strings"),
    ({'runtimes': {'nvidia': 'nvidia-container-runtime'}}, "invalid value for 'runtimes.nvidia'"),
    ({'runtimes': ['nvidia']}, "invalid value for 'runtimes'"),
    ({'default-runtime': 'nvidia'},
     "invalid value for 'default-runtime': got \"nvidia\", expected a runtime defined under \"runtimes\""),
    ({'default-runtime': 7}, "invalid value for 'default-runtime': got 7, expected a string"),
    ({'live-restore': 'true'}, "invalid value for 'live-restore': got \"true\", expected a JSON boolean"),
    ({'debug': 1}, "invalid value for 'debug': got 1, expected a JSON boolean"),
    ({'max-concurrent-downloads': True}, "'max-concurrent-downloads': got true, expected an integer"),
    ({'shutdown-timeout': '30'}, "'shutdown-timeout': got \"30\", expected an integer"),
    ({'labels': 'a=b'}, "'labels': got \"a=b\", expected a list of strings"),
    ({'labels': ['nolabel']}, "'labels[0]': got \"nolabel\", expected a \"key=value\" string"),
    ({'dns': ['not-an-ip']}, "'dns[0]': got \"not-an-ip\", expected an IP address"),
    ({'exec-opts': [1]}, "'exec-opts[0]': got 1, expected a string"),
    ({'data-root': ['/srv']}, "'data-root': got [\"/srv\"], expected a string"),
    ({'log-level': 'verbose'}, "'log-level': got \"verbose\", expected one of"),
    ({'hosts': 'unix:///var/run/docker.sock'}, "'hosts': got \"unix:///var/run/docker.sock\""),
])
def test_validation_rejects(daemon_json, settings, fragment):
    daemon_json.parent.mkdir()
    original = '{"debug": true}'
    daemon_json.write_text(original, encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(daemon_json, settings)
    assert fragment in str(info.value)
    assert str(info.value).startswith('docker_daemon: ')
    assert info.value.details['errors']
    assert daemon_json.read_text(encoding='utf-8') == original
    assert dir_listing(daemon_json.parent) == ['daemon.json']


def test_validation_reports_every_problem():
    with pytest.raises(Error) as info:
        ddc.validate_config({'debug': 'yes', 'log-opts': {'max-file': 3}, 'registry-mirrors': ['http://x']})
    assert len(info.value.details['errors']) == 3
    assert len(str(info.value).splitlines()) == 3


def test_existing_invalid_value_is_reported_even_when_not_managed(daemon_json):
    daemon_json.parent.mkdir()
    write_json(daemon_json, {'log-opts': {'max-file': 3}})
    with pytest.raises(Error, match='quote it'):
        apply(daemon_json, {'debug': True})
    # and the role can repair it by managing the key
    apply(daemon_json, {'log-opts': {'max-file': '3'}})
    assert read_json(daemon_json) == {'log-opts': {'max-file': '3'}}


@pytest.mark.parametrize('settings', [
    {'registry-mirrors': ['https://mirror.example.com', 'https://mirror.example.com:5000/',
                          'https://[2001:db8::1]:443']},
    {'runtimes': {'nvidia': {'args': [], 'path': 'nvidia-container-runtime'}}, 'default-runtime': 'nvidia'},
    {'runtimes': {'nvidia': {'path': '/usr/bin/nvidia-container-runtime', 'runtimeArgs': ['--debug']}}},
    {'runtimes': {'gvisor': {'runtimeType': 'io.containerd.runsc.v1', 'options': {'TypeUrl': 'x'}}}},
    {'default-runtime': 'runc'},
    {'default-runtime': 'io.containerd.runc.v2'},
    {'log-opts': {'max-file': '3', 'max-size': '100m'}},
    {'hosts': ['unix:///var/run/docker.sock', 'fd://']},
    {'hosts': ['tcp://0.0.0.0:2376'], 'tlsverify': True, 'tlscacert': '/etc/docker/ca.pem',
     'tlscert': '/etc/docker/cert.pem', 'tlskey': '/etc/docker/key.pem'},
    {'insecure-registries': []},
    {'dns': ['1.1.1.1', '2606:4700:4700::1111'], 'labels': ['a=b'], 'max-concurrent-downloads': 6,
     'live-restore': True, 'log-level': 'warn', 'x-unknown': {'anything': [1, None]}},
], ids=lambda s: ','.join(s))
def test_validation_accepts(settings):
    assert ddc.validate_config(ddc.merge_settings({}, settings)) == []


def test_insecure_registries_refused_without_allow_insecure(daemon_json):
    with pytest.raises(Error) as info:
        apply(daemon_json, {'insecure-registries': ['registry.local:5000']})
    assert "'insecure-registries' is set to [\"registry.local:5000\"]" in str(info.value)
    assert 'allow_insecure=true' in str(info.value)
    assert not daemon_json.exists()


def test_insecure_registries_warned_with_allow_insecure(daemon_json):
    result = apply(daemon_json, {'insecure-registries': ['registry.local:5000']}, allow_insecure=True)
    assert result['changed'] is True
    assert read_json(daemon_json) == {'insecure-registries': ['registry.local:5000']}
    assert len(result['warnings']) == 1
    assert 'insecure-registries' in result['warnings'][0]


@pytest.mark.parametrize('extra', [{}, {'tls': True}, {'tlsverify': False}])
def test_tcp_host_without_tlsverify_refused(daemon_json, extra):
    settings = dict({'hosts': ['unix:///var/run/docker.sock', 'tcp://0.0.0.0:2375']}, **extra)
    with pytest.raises(Error, match="'hosts' contains \\[\"tcp://0.0.0.0:2375\"\\] but 'tlsverify' is not true"):
        apply(daemon_json, settings)
    result = apply(daemon_json, settings, allow_insecure=True)
    assert result['changed'] is True
    assert any('tcp://0.0.0.0:2375' in w for w in result['warnings'])


def test_settings_must_serialize():
    with pytest.raises(Error, match='settings cannot be written as JSON'):
        ddc.normalize_settings({'mtu': float('nan')})
    with pytest.raises(Error, match='settings cannot be written as JSON'):
        ddc.normalize_settings({'x': object()})


# ---------------------------------------------------------------------------
# Unit file scanning and conflicts
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


def test_dropins_apply_in_name_order_across_directories(tmp_path):
    first = tmp_path / 'etc'
    second = tmp_path / 'run'
    first.mkdir()
    second.mkdir()
    (second / '10-start.conf').write_text('[Service]\nExecStart=/usr/bin/dockerd --debug\n', encoding='utf-8')
    (first / '20-reset.conf').write_text('[Service]\nExecStart=\n', encoding='utf-8')
    assert ddc.effective_exec_start([str(first), str(second)]) == []
    (first / '10-start.conf').write_text('[Service]\nExecStart=/usr/bin/dockerd -D\n', encoding='utf-8')
    (first / '20-reset.conf').unlink()
    assert ddc.effective_exec_start([str(first), str(second)]) == [
        (str(first / '10-start.conf'), '/usr/bin/dockerd -D')]


def test_non_service_sections_and_other_keys_are_ignored():
    text = ('[Unit]\nExecStart=/usr/bin/dockerd --debug\n[Service]\nExecStartPre=/usr/bin/dockerd -D\n'
            'ExecStart = /usr/bin/dockerd --label a=b\n[Install]\nWantedBy=multi-user.target\n')
    assert ddc.exec_start_entries(text) == ['/usr/bin/dockerd --label a=b']


def test_continuation_skips_comment_lines():
    text = '[Service]\nExecStart=/usr/bin/dockerd \\\n# a comment\n  --debug \\\n  --label a=b\n'
    assert ddc.exec_start_entries(text) == ['/usr/bin/dockerd --debug --label a=b']


@pytest.mark.parametrize('command,expected', [
    ('/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock',
     [('-H', 'H', 'fd://'), ('--containerd', 'containerd', '/run/containerd/containerd.sock')]),
    ('-/usr/bin/dockerd -Hfd:// -Dl debug',
     [('-H', 'H', 'fd://'), ('-D', 'D', None), ('-l', 'l', 'debug')]),
    ('/usr/bin/dockerd --log-opt max-size=10m --tlsverify --tlscacert /x',
     [('--log-opt', 'log-opt', 'max-size=10m'), ('--tlsverify', 'tlsverify', None),
      ('--tlscacert', 'tlscacert', '/x')]),
    ('/usr/bin/env dockerd "--label=a b"', [('--label', 'label', 'a b')]),
    ('@/usr/bin/dockerd dockerd --debug', [('--debug', 'debug', None)]),
    ('/usr/bin/dockerd -- --debug', []),
    ('/usr/local/bin/start-docker.sh --debug', None),
    ('', None),
])
def test_dockerd_flags(command, expected):
    assert ddc.dockerd_flags(command) == expected


@pytest.mark.parametrize('name,keys', [
    ('H', (('hosts',),)), ('host', (('hosts',),)), ('registry-mirror', (('registry-mirrors',),)),
    ('default-runtime', (('default-runtime',),)), ('log-driver', (('log-driver',),)),
    ('log-opt', (('log-opts',),)), ('s', (('storage-driver',),)), ('storage-driver', (('storage-driver',),)),
    ('g', (('data-root',), ('graph',))), ('data-root', (('data-root',), ('graph',))),
    ('insecure-registry', (('insecure-registries',),)), ('live-restore', (('live-restore',),)),
    ('D', (('debug',),)), ('debug', (('debug',),)), ('add-runtime', (('runtimes',),)),
    ('exec-opt', (('exec-opts',),)), ('label', (('labels',),)), ('dns', (('dns',),)),
    ('l', (('log-level',),)), ('log-level', (('log-level',),)), ('tls', (('tls',),)),
    ('tlsverify', (('tlsverify',),)), ('tlscert', (('tlscert',),)), ('userns-remap', (('userns-remap',),)),
    ('http-proxy', (('proxies', 'http-proxy'),)),
    ('config-file', ()), ('validate', ()), ('x', ()),
])
def test_flag_keys(name, keys):
    assert ddc.flag_keys(name) == keys


def test_nested_proxy_conflict(tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nExecStart=/usr/bin/dockerd --http-proxy=http://proxy:3128\n', encoding='utf-8')
    assert ddc.find_conflicts({'proxies': {'no-proxy': 'localhost'}}, [str(unit)])[0] == []
    conflicts, _ = ddc.find_conflicts({'proxies': {'http-proxy': 'http://p:1'}}, [str(unit)])
    assert [(c['key'], c['flag']) for c in conflicts] == [('proxies.http-proxy', '--http-proxy')]


def test_every_conflict_is_reported(tmp_path):
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nExecStart=/usr/bin/dockerd -H fd:// --debug --data-root=/srv\n', encoding='utf-8')
    with pytest.raises(Error) as info:
        ddc.check_conflicts({'hosts': ['fd://'], 'debug': True, 'data-root': '/srv'}, [str(unit)], '/x')
    assert [c['key'] for c in info.value.details['conflicts']] == ['hosts', 'debug', 'data-root']
    assert len(str(info.value).splitlines()) == 3


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


def test_environment_file_wins_over_environment(tmp_path):
    env_file = tmp_path / 'env'
    env_file.write_text('OPTS=--debug\n', encoding='utf-8')
    unit = tmp_path / 'docker.service'
    unit.write_text('[Service]\nEnvironmentFile=%s\nEnvironment=OPTS=--label=a=b\n'
                    'ExecStart=/usr/bin/dockerd ${OPTS}\n' % env_file, encoding='utf-8')
    commands, environment = ddc.effective_service([str(unit)])
    assert environment == {'OPTS': ('--debug', str(env_file))}
    conflicts, _ = ddc.find_conflicts({'debug': True, 'labels': ['a=b']}, [str(unit)])
    assert [c['key'] for c in conflicts] == ['debug']


@pytest.mark.parametrize('command,names', [
    ('/usr/sbin/dockerd $DOCKER_OPTS', ['DOCKER_OPTS']),
    ('/usr/sbin/dockerd ${A} --x=$B_2 $A $', ['A', 'B_2']),
    ('/usr/sbin/dockerd --debug', []),
    ('/usr/sbin/dockerd ${unclosed', []),
])
def test_referenced_variables(command, names):
    assert ddc.referenced_variables(command) == names


def test_read_environment_file(tmp_path):
    env_file = tmp_path / 'env'
    env_file.write_text('A="one two"\n# B=x\nexport C=3\nnot a line\nD=\'q\' # note\nE=a \\\n  b\n',
                        encoding='utf-8')
    assert ddc.read_environment_file(str(env_file)) == {'A': 'one two', 'C': '3', 'D': 'q', 'E': 'a b'}
    assert ddc.read_environment_file(str(tmp_path / 'missing')) == {}


def test_missing_unit_paths_are_fine(daemon_json, tmp_path):
    result = apply(daemon_json, {'hosts': ['fd://']},
                   unit_paths=[str(tmp_path / 'nope.service'), str(tmp_path / 'nope.d')])
    assert result['changed'] is True


# ---------------------------------------------------------------------------
# Reload classification
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('keys,expected', [
    ([], False),
    (['debug'], True),
    (['runtimes', 'default-runtime'], True),
    (['registry-mirrors', 'insecure-registries', 'live-restore', 'labels', 'shutdown-timeout',
      'max-concurrent-downloads', 'max-concurrent-uploads', 'max-download-attempts',
      'authorization-plugins'], True),
    (['runtimes', 'log-opts'], False),
    (['data-root'], False),
    (['features'], False),
    (['hosts'], False),
    (iter(['debug']), True),
])
def test_classify_reload(keys, expected):
    assert ddc.classify_reload(keys) is expected


def test_reload_sufficient_in_result(daemon_json):
    result = apply(daemon_json, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}},
                                 'default-runtime': 'nvidia'})
    assert result['changed_keys'] == ['default-runtime', 'runtimes']
    assert result['reload_sufficient'] is True
    result = apply(daemon_json, {'log-driver': 'local'})
    assert result['reload_sufficient'] is False


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

KEYS = st.text(alphabet='abcdefgh-', min_size=1, max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=6) \
    | st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=6)
PROPERTY = hyp_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_keys_not_in_settings_are_kept(existing, settings):
    merged = ddc.merge_settings(existing, settings)
    for key, value in existing.items():
        if key not in settings:
            assert key in merged
            assert ddc.canonical_json(merged[key]) == ddc.canonical_json(value)


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_settings_win(existing, settings):
    merged = ddc.merge_settings(existing, settings)
    for key, value in settings.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert ddc.canonical_json(merged[key]) == ddc.canonical_json(value)
        else:
            assert isinstance(merged[key], dict)


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_merge_is_idempotent(existing, settings):
    once = ddc.merge_settings(existing, settings)
    twice = ddc.merge_settings(once, settings)
    assert ddc.canonical_json(once) == ddc.canonical_json(twice)
    assert list(once) == list(twice)
    assert ddc.changed_keys(once, twice) == []


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_merge_does_not_mutate_inputs(existing, settings):
    before = (ddc.canonical_json(existing), ddc.canonical_json(settings))
    ddc.merge_settings(existing, settings)
    assert (ddc.canonical_json(existing), ddc.canonical_json(settings)) == before


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_existing_key_order_kept(existing, settings):
    merged = ddc.merge_settings(existing, settings)
    kept = [k for k in existing if k in merged]
    assert list(merged)[:len(kept)] == kept


@PROPERTY
@given(data=JSON_OBJECTS)
def test_property_format_round_trips(data):
    text = ddc.format_config(data)
    parsed, duplicates = ddc.parse_config_text(text, 'x')
    assert ddc.config_equal(parsed, data)
    assert list(parsed) == list(data)
    assert duplicates == []


@hyp_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_apply_twice_is_stable(tmp_path_factory, existing, settings):
    path = tmp_path_factory.mktemp('prop') / 'daemon.json'
    path.write_text(json.dumps(existing), encoding='utf-8')
    first = apply(path, settings, backup=False)
    content = path.read_bytes()
    second = apply(path, settings, backup=False)
    assert second['changed'] is False
    assert path.read_bytes() == content
    assert ddc.config_equal(read_json(path), first['config'])


# ---------------------------------------------------------------------------
# Backup, check mode, dockerd validation
# ---------------------------------------------------------------------------

def test_backup_keeps_old_content(daemon_json):
    daemon_json.parent.mkdir()
    old = '{ "data-root": "/srv/docker" }'
    daemon_json.write_text(old, encoding='utf-8')
    now = datetime.datetime(2024, 5, 6, 7, 8, 9)
    result = apply(daemon_json, {'debug': True}, now=now)
    assert result['backup_file'] == '%s.20240506T070809.bak' % daemon_json
    assert Path(result['backup_file']).read_text(encoding='utf-8') == old
    # a second backup in the same second does not overwrite the first
    result2 = apply(daemon_json, {'debug': False}, now=now)
    assert result2['backup_file'] == '%s.20240506T070809.1.bak' % daemon_json
    assert Path(result['backup_file']).read_text(encoding='utf-8') == old
    assert json.loads(Path(result2['backup_file']).read_text(encoding='utf-8'))['debug'] is True


def test_no_backup_when_disabled_or_no_file(daemon_json):
    result = apply(daemon_json, {'debug': True})
    assert 'backup_file' not in result
    result = apply(daemon_json, {'debug': False}, backup=False)
    assert 'backup_file' not in result
    assert dir_listing(daemon_json.parent) == ['daemon.json']


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
# Through Ansible
# ---------------------------------------------------------------------------

ANSIBLE = REPO / '.venv' / 'bin' / 'ansible'


def run_ansible(tmp_path, args, *extra):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        'ANSIBLE_LOCAL_TEMP': str(tmp_path / 'ansible-local'),
        'ANSIBLE_REMOTE_TEMP': str(tmp_path / 'ansible-remote'),
        'ANSIBLE_NOCOLOR': '1',
    })
    proc = subprocess.run(
        [str(ANSIBLE), 'localhost', '-i', 'localhost,', '-c', 'local',
         '-M', str(MODULES_DIR), '-m', 'docker_daemon_config', '-a', json.dumps(args),
         '-e', 'ansible_python_interpreter=%s' % sys.executable] + list(extra),
        cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    out = proc.stdout.decode()
    try:
        report = json.loads(out)
    except ValueError:
        pytest.fail('ansible output is not JSON:\n%s\n%s' % (out, proc.stderr.decode()))
    return report['plays'][0]['tasks'][0]['hosts']['localhost']


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

    checked = run_ansible(tmp_path, args, '--check', '--diff')
    assert checked.get('failed') is not True, checked
    assert checked['changed'] is True
    assert checked['changed_keys'] == ['default-runtime', 'log-opts']
    assert checked['reload_sufficient'] is False
    assert checked['diff']['before'] == NVIDIA_CTK_TEXT
    assert '"default-runtime": "nvidia"' in checked['diff']['after']
    assert checked['diff']['before_header'] == str(target)
    assert target.read_text(encoding='utf-8') == NVIDIA_CTK_TEXT

    applied = run_ansible(tmp_path, args)
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

    again = run_ansible(tmp_path, args)
    assert again['changed'] is False

    failed = run_ansible(tmp_path, dict(args, settings={'log-opts': {'max-file': 3}}))
    assert failed['failed'] is True
    assert "quote it: \"3\"" in failed['msg']
    assert failed['errors'] == [failed['msg']]
