"""The docker service as systemd runs it (module_utils/gpuhost_systemd_unit.py)."""

import pytest

import plugin_loader

plugin_loader.use_module_utils()

from ansible.module_utils import gpuhost_systemd_unit as unit  # noqa: E402
from ansible.module_utils.gpuhost_daemon_json import DaemonConfigError as Error  # noqa: E402


def write_unit(path, exec_start):
    path.write_text('[Service]\nExecStart=%s\n' % exec_start, encoding='utf-8')
    return [str(path)]


# ---------------------------------------------------------------------------
# Unit files and directives
# ---------------------------------------------------------------------------

def test_non_service_sections_and_other_keys_are_ignored():
    text = ('[Unit]\nExecStart=/usr/bin/dockerd --debug\n[Service]\nExecStartPre=/usr/bin/dockerd -D\n'
            'ExecStart = /usr/bin/dockerd --label a=b\nEnvironment=A=1\nEnvironmentFile=-/etc/default/docker\n'
            'Type=notify\n[Install]\nWantedBy=multi-user.target\nExecStart=/usr/bin/dockerd -D\n')
    assert unit.service_directives(text) == [
        ('ExecStart', '/usr/bin/dockerd --label a=b'), ('Environment', 'A=1'),
        ('EnvironmentFile', '-/etc/default/docker')]


def test_continuation_skips_comment_lines():
    text = '[Service]\nExecStart=/usr/bin/dockerd \\\n# a comment\n  --debug \\\n; another\n  --label a=b\n'
    assert unit.service_directives(text) == [('ExecStart', '/usr/bin/dockerd --debug --label a=b')]


def test_continuation_at_end_of_file_is_kept():
    assert unit.service_directives('[Service]\nExecStart=/usr/bin/dockerd \\\n') == [
        ('ExecStart', '/usr/bin/dockerd')]


def test_unit_files_order(tmp_path):
    lib = tmp_path / 'lib.service'
    etc = tmp_path / 'etc.service'
    lib.write_text('', encoding='utf-8')
    etc.write_text('', encoding='utf-8')
    first = tmp_path / 'etc.d'
    second = tmp_path / 'run.d'
    first.mkdir()
    second.mkdir()
    (first / '20-b.conf').write_text('', encoding='utf-8')
    (second / '20-b.conf').write_text('', encoding='utf-8')
    (second / '10-a.conf').write_text('', encoding='utf-8')
    (second / 'notes.txt').write_text('', encoding='utf-8')
    single = tmp_path / '15-single.conf'
    single.write_text('', encoding='utf-8')
    files = unit.unit_files([str(lib), str(etc), str(first), str(second), str(single),
                             str(tmp_path / 'missing.service')])
    assert files == [str(etc), str(second / '10-a.conf'), str(single), str(first / '20-b.conf')]


def test_dropins_apply_in_name_order_across_directories(tmp_path):
    first = tmp_path / 'etc'
    second = tmp_path / 'run'
    first.mkdir()
    second.mkdir()
    (second / '10-start.conf').write_text('[Service]\nExecStart=/usr/bin/dockerd --debug\n', encoding='utf-8')
    (first / '20-reset.conf').write_text('[Service]\nExecStart=\n', encoding='utf-8')
    assert unit.effective_service([str(first), str(second)]) == ([], {})
    (first / '10-start.conf').write_text('[Service]\nExecStart=/usr/bin/dockerd -D\n', encoding='utf-8')
    (first / '20-reset.conf').unlink()
    commands, _ = unit.effective_service([str(first), str(second)])
    assert commands == [(str(first / '10-start.conf'), '/usr/bin/dockerd -D')]


def test_exec_start_lines_add_up_until_reset(tmp_path):
    main = tmp_path / 'docker.service'
    main.write_text('[Service]\nExecStart=/usr/bin/dockerd -H fd://\n', encoding='utf-8')
    dropins = tmp_path / 'docker.service.d'
    dropins.mkdir()
    (dropins / '10-more.conf').write_text('[Service]\nExecStart=/usr/bin/true\n', encoding='utf-8')
    commands, _ = unit.effective_service([str(main), str(dropins)])
    assert commands == [(str(main), '/usr/bin/dockerd -H fd://'), (str(dropins / '10-more.conf'), '/usr/bin/true')]


def test_environment_file_wins_over_environment(tmp_path):
    env_file = tmp_path / 'env'
    env_file.write_text('OPTS=--debug\n', encoding='utf-8')
    path = tmp_path / 'docker.service'
    path.write_text('[Service]\nEnvironmentFile=%s\nEnvironment=OPTS=--label=a=b OTHER=1\n'
                    'ExecStart=/usr/bin/dockerd ${OPTS}\n' % env_file, encoding='utf-8')
    commands, environment = unit.effective_service([str(path)])
    assert commands == [(str(path), '/usr/bin/dockerd ${OPTS}')]
    assert environment == {'OPTS': ('--debug', str(env_file)), 'OTHER': ('1', str(path))}
    flags = unit.service_flags([str(path)])
    assert [c['key'] for c in unit.find_conflicts({'debug': True, 'labels': ['a=b']}, flags)] == ['debug']


def test_optional_missing_environment_file_is_skipped(tmp_path):
    path = tmp_path / 'docker.service'
    path.write_text('[Service]\nEnvironmentFile=-%s\nExecStart=/usr/bin/dockerd $DOCKER_OPTS\n'
                    % (tmp_path / 'missing'), encoding='utf-8')
    assert unit.effective_service([str(path)])[1] == {}
    assert unit.service_flags([str(path)]) == []


@pytest.mark.parametrize('text,expected', [
    ('A=1 "B=two words" C', {'A': '1', 'B': 'two words'}),
    ("'D=x y' 1E=2 _F=", {'D': 'x y', '_F': ''}),
    ('"unclosed', {}),
])
def test_parse_assignments(text, expected):
    assert unit.parse_assignments(text) == expected


@pytest.mark.parametrize('command,names', [
    ('/usr/sbin/dockerd $DOCKER_OPTS', ['DOCKER_OPTS']),
    ('/usr/sbin/dockerd ${A} --x=$B_2 $A $', ['A', 'B_2']),
    ('/usr/sbin/dockerd --debug', []),
    ('/usr/sbin/dockerd ${unclosed', []),
    ('/usr/sbin/dockerd $1 ${9x}', []),
])
def test_referenced_variables(command, names):
    assert unit.referenced_variables(command) == names


def test_read_environment_file(tmp_path):
    env_file = tmp_path / 'env'
    env_file.write_text('A="one two"\n# B=x\nexport C=3\nnot a line\nD=\'q\' # note\nE=a \\\n  b\n'
                        'F="unclosed\n',
                        encoding='utf-8')
    assert unit.read_environment_file(str(env_file)) == {
        'A': 'one two', 'C': '3', 'D': 'q', 'E': 'a b', 'F': '"unclosed'}
    assert unit.read_environment_file(str(tmp_path / 'missing')) == {}


# ---------------------------------------------------------------------------
# dockerd flags
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('command,expected', [
    ('/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock',
     [('-H', 'H', 'fd://'), ('--containerd', 'containerd', '/run/containerd/containerd.sock')]),
    ('-/usr/bin/dockerd -Hfd:// -Dl debug',
     [('-H', 'H', 'fd://'), ('-D', 'D', None), ('-l', 'l', 'debug')]),
    ('/usr/bin/dockerd -H=unix:///x', [('-H', 'H', 'unix:///x')]),
    ('/usr/bin/dockerd --log-opt max-size=10m --tlsverify --tlscacert /x',
     [('--log-opt', 'log-opt', 'max-size=10m'), ('--tlsverify', 'tlsverify', None),
      ('--tlscacert', 'tlscacert', '/x')]),
    ('/usr/bin/env dockerd "--label=a b"', [('--label', 'label', 'a b')]),
    ('@/usr/bin/dockerd dockerd --debug', [('--debug', 'debug', None)]),
    ('/usr/bin/dockerd -- --debug', []),
    ('/usr/local/bin/start-docker.sh --debug', None),
    ('', None),
    # through a shell
    ('/bin/sh -c "exec /usr/bin/dockerd --registry-mirror=https://x"',
     [('--registry-mirror', 'registry-mirror', 'https://x')]),
    ("/bin/bash -ec 'mkdir -p /run/x; exec dockerd --debug -H fd://'",
     [('--debug', 'debug', None), ('-H', 'H', 'fd://')]),
    ("/bin/sh -x -c 'dockerd --data-root /srv && echo done'", [('--data-root', 'data-root', '/srv')]),
    ("/bin/sh -c 'dockerd --label a=b; echo --debug'", [('--label', 'label', 'a=b')]),
    ("/bin/sh -c 'dockerd --label a=b | tee /tmp/log'", [('--label', 'label', 'a=b')]),
    ("/bin/sh -c 'dockerd --debug || exit 1'", [('--debug', 'debug', None)]),
    ('/bin/sh /usr/local/bin/start-docker.sh', None),
    ("/bin/sh -c 'echo no daemon here'", None),
])
def test_dockerd_flags(command, expected):
    assert unit.dockerd_flags(command) == expected


@pytest.mark.parametrize('args,expected', [
    # boolean long flags never take the next word as their value
    (['--tlsverify', '-H', 'tcp://0.0.0.0:2376'], [('--tlsverify', 'tlsverify', None), ('-H', 'H', 'tcp://0.0.0.0:2376')]),
    (['--tlsverify', 'tcp://0.0.0.0:2376'], [('--tlsverify', 'tlsverify', None)]),
    (['--debug', '--live-restore', '--data-root', '/srv'],
     [('--debug', 'debug', None), ('--live-restore', 'live-restore', None), ('--data-root', 'data-root', '/srv')]),
    (['--tlsverify=false'], [('--tlsverify', 'tlsverify', 'false')]),
    (['--iptables', 'false'], [('--iptables', 'iptables', None)]),
    (['--data-root'], [('--data-root', 'data-root', None)]),
    (['-H'], [('-H', 'H', None)]),
    (['--', '--debug'], []),
    (['plain', '--debug'], [('--debug', 'debug', None)]),
])
def test_parse_flags(args, expected):
    assert unit.parse_flags(args) == expected


def test_service_flags_name_where_each_flag_is_written(tmp_path):
    env_file = tmp_path / 'default-docker'
    env_file.write_text('DOCKER_OPTS="--dns 8.8.8.8"\n', encoding='utf-8')
    path = tmp_path / 'docker.service'
    path.write_text('[Service]\nEnvironmentFile=-%s\nExecStart=/usr/bin/dockerd -H fd:// $DOCKER_OPTS\n'
                    'ExecStart=/usr/bin/true --debug\n' % env_file, encoding='utf-8')
    assert unit.service_flags([str(path)]) == [
        ('-H', 'H', 'fd://', str(path), None),
        ('--dns', 'dns', '8.8.8.8', str(env_file), '$DOCKER_OPTS'),
    ]


@pytest.mark.parametrize('exec_start,on', [
    ('/usr/bin/dockerd --tlsverify', True),
    ('/usr/bin/dockerd --tlsverify -H tcp://0.0.0.0:2376', True),
    ('/usr/bin/dockerd --tlsverify=true', True),
    ('/usr/bin/dockerd --tlsverify=1', True),
    ('/usr/bin/dockerd --tlsverify=TRUE', True),
    ('/usr/bin/dockerd --tlsverify=false', False),
    ('/usr/bin/dockerd --tlsverify=0', False),
    ('/usr/bin/dockerd --tlsverify --tlsverify=false', False),
    ('/usr/bin/dockerd --tls', False),
    ('/usr/bin/dockerd -H fd://', False),
    ('/bin/sh -c "exec dockerd --tlsverify"', True),
    ('/usr/bin/true --tlsverify', False),
])
def test_tls_verify_flag(tmp_path, exec_start, on):
    flags = unit.service_flags(write_unit(tmp_path / 'docker.service', exec_start))
    assert unit.tls_verify_flag(flags) is on


def test_tls_verify_flag_from_an_environment_file(tmp_path):
    env_file = tmp_path / 'default-docker'
    env_file.write_text('DOCKER_OPTS="--tlsverify --tlscacert=/etc/docker/ca.pem"\n', encoding='utf-8')
    path = tmp_path / 'docker.service'
    path.write_text('[Service]\nEnvironmentFile=%s\nExecStart=/usr/bin/dockerd $DOCKER_OPTS\n' % env_file,
                    encoding='utf-8')
    assert unit.tls_verify_flag(unit.service_flags([str(path)])) is True


# ---------------------------------------------------------------------------
# Conflicts between flags and daemon.json keys
# ---------------------------------------------------------------------------

def test_nested_proxy_conflict(tmp_path):
    flags = unit.service_flags(write_unit(tmp_path / 'docker.service', '/usr/bin/dockerd --http-proxy=http://p:3128'))
    assert unit.find_conflicts({'proxies': {'no-proxy': 'localhost'}}, flags) == []
    conflicts = unit.find_conflicts({'proxies': {'http-proxy': 'http://p:1'}}, flags)
    assert [(c['key'], c['flag']) for c in conflicts] == [('proxies.http-proxy', '--http-proxy')]


def test_every_conflict_is_reported(tmp_path):
    path = tmp_path / 'docker.service'
    flags = unit.service_flags(write_unit(path, '/usr/bin/dockerd -H fd:// --debug --data-root=/srv -H unix:///x'))
    with pytest.raises(Error) as info:
        unit.check_conflicts({'hosts': ['fd://'], 'debug': True, 'data-root': '/srv'}, flags, '/x')
    assert info.value.details['conflicts'] == [
        {'key': 'hosts', 'flag': '-H', 'unit_file': str(path)},
        {'key': 'debug', 'flag': '--debug', 'unit_file': str(path)},
        {'key': 'data-root', 'flag': '--data-root', 'unit_file': str(path)},
    ]
    assert len(str(info.value).splitlines()) == 3


def test_shell_wrapped_dockerd_conflicts(tmp_path):
    path = tmp_path / 'docker.service'
    flags = unit.service_flags(write_unit(path, '/bin/sh -c "exec /usr/bin/dockerd --registry-mirror=https://x"'))
    with pytest.raises(Error) as info:
        unit.check_conflicts({'registry-mirrors': ['https://mirror.example.com']}, flags, '/etc/docker/daemon.json')
    assert str(info.value) == (
        "docker_daemon: 'registry-mirrors' is set in daemon.json and as flag '--registry-mirror' in %s; "
        "dockerd refuses to start when an option is given both ways. Remove the flag from %s (then "
        "systemctl daemon-reload) or drop the key." % (path, path))


def test_tlsverify_flag_does_not_hide_the_hosts_flag(tmp_path):
    path = tmp_path / 'docker.service'
    flags = unit.service_flags(write_unit(path, '/usr/bin/dockerd --tlsverify -H tcp://0.0.0.0:2376 '
                                                '--tlscacert=/etc/docker/ca.pem'))
    conflicts = unit.find_conflicts({'hosts': ['tcp://0.0.0.0:2376']}, flags)
    assert [(c['key'], c['flag']) for c in conflicts] == [('hosts', '-H')]


def test_flag_from_an_environment_file_names_the_file_and_variable(tmp_path):
    env_file = tmp_path / 'default-docker'
    env_file.write_text('DOCKER_OPTS="--dns 8.8.8.8"\n', encoding='utf-8')
    path = tmp_path / 'docker.service'
    path.write_text('[Service]\nEnvironmentFile=-%s\nExecStart=/usr/bin/dockerd $DOCKER_OPTS\n' % env_file,
                    encoding='utf-8')
    conflicts = unit.find_conflicts({'dns': ['1.1.1.1']}, unit.service_flags([str(path)]))
    assert conflicts[0]['message'] == (
        "docker_daemon: 'dns' is set in daemon.json and as flag '--dns' in %s ($DOCKER_OPTS); dockerd refuses "
        "to start when an option is given both ways. Remove the flag from %s or drop the key." % (env_file, env_file))


def test_other_config_file_warns(tmp_path):
    flags = unit.service_flags(write_unit(tmp_path / 'docker.service', '/usr/bin/dockerd --config-file /opt/d.json'))
    assert unit.check_conflicts({'debug': True}, flags, '/etc/docker/daemon.json') == [
        'docker_daemon: %s starts dockerd with --config-file /opt/d.json, so changes to /etc/docker/daemon.json '
        'do not take effect.' % (tmp_path / 'docker.service')]
    flags = unit.service_flags(write_unit(tmp_path / 'docker.service',
                                          '/usr/bin/dockerd --config-file=/etc/docker/daemon.json'))
    assert unit.check_conflicts({'debug': True}, flags, '/etc/docker/daemon.json') == []
