"""The daemon.json rules (module_utils/gpuhost_daemon_schema.py), shared by the module and the preflight."""

import re

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

import plugin_loader

plugin_loader.use_module_utils()

from ansible.module_utils import gpuhost_daemon_schema as schema  # noqa: E402
from ansible.module_utils.gpuhost_daemon_json import merge_settings  # noqa: E402

INSECURE_HINT = 'allow insecure settings (docker_daemon_allow_insecure: true)'


def did_you_mean(key):
    """The suggestion in an unknown-key message, in either quote style."""
    return re.compile('Did you mean ["\']%s["\']\\?' % re.escape(key))


def judge(settings, existing=None, **kwargs):
    """check_config on ``settings`` merged into ``existing``, as the module runs it."""
    return schema.check_config(merge_settings(existing or {}, settings), user_keys=list(settings), **kwargs)


# ---------------------------------------------------------------------------
# Types and values
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('settings,fragment', [
    ({'registry-mirrors': ['https://mirror.example.com/v2']},
     "invalid value for 'registry-mirrors[0]': got \"https://mirror.example.com/v2\", expected an https:// URL"),
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
    ({'log-opts': {'labels': ['a']}}, "'log-opts.labels': got [\"a\"], expected a string"),
    ({'log-opts': ['max-size=10m']}, "invalid value for 'log-opts': got [\"max-size=10m\"], expected an object"),
    ({'runtimes': {'nvidia': {'args': []}}},
     "invalid value for 'runtimes.nvidia.path': got null, expected a non-empty string"),
    ({'runtimes': {'nvidia': {'path': ''}}}, "'runtimes.nvidia.path': got \"\""),
    ({'runtimes': {'nvidia': {'path': '  '}}}, "'runtimes.nvidia.path': got \"  \""),
    ({'runtimes': {'nvidia': {'path': 'x', 'runtimeArgs': '--debug'}}},
     "'runtimes.nvidia.runtimeArgs': got \"--debug\", expected a list of strings"),
    ({'runtimes': {'nvidia': {'path': 'x', 'args': [1]}}}, "'runtimes.nvidia.args': got [1]"),
    ({'runtimes': {'gvisor': {'runtimeType': ''}}}, "'runtimes.gvisor.runtimeType': got \"\""),
    ({'runtimes': {'nvidia': 'nvidia-container-runtime'}}, "invalid value for 'runtimes.nvidia'"),
    ({'runtimes': ['nvidia']}, "invalid value for 'runtimes'"),
    ({'default-runtime': 'nvidia'},
     "invalid value for 'default-runtime': got \"nvidia\", expected a runtime defined under \"runtimes\" "
     "or a built-in runtime (io.containerd.runc.v2, runc)"),
    ({'default-runtime': 7}, "invalid value for 'default-runtime': got 7, expected a string"),
    ({'live-restore': 'true'}, "invalid value for 'live-restore': got \"true\", expected a JSON boolean"),
    ({'debug': 1}, "invalid value for 'debug': got 1, expected a JSON boolean"),
    ({'max-concurrent-downloads': True}, "'max-concurrent-downloads': got true, expected an integer"),
    ({'max-concurrent-downloads': 3.0}, "'max-concurrent-downloads': got 3.0, expected an integer"),
    ({'shutdown-timeout': '30'}, "'shutdown-timeout': got \"30\", expected an integer"),
    ({'labels': 'a=b'}, "'labels': got \"a=b\", expected a list of strings"),
    ({'labels': ['nolabel']}, "'labels[0]': got \"nolabel\", expected a \"key=value\" string"),
    ({'dns': ['not-an-ip']}, "'dns[0]': got \"not-an-ip\", expected an IP address"),
    ({'exec-opts': [1]}, "'exec-opts[0]': got 1, expected a string"),
    ({'data-root': ['/srv']}, "'data-root': got [\"/srv\"], expected a string"),
    ({'log-level': 'verbose'}, "'log-level': got \"verbose\", expected one of debug, info, warn, error, fatal"),
    ({'hosts': 'unix:///var/run/docker.sock'}, "'hosts': got \"unix:///var/run/docker.sock\""),
    ({'features': {'buildkit': 'true'}}, "'features.buildkit': got \"true\", expected a JSON boolean"),
    ({'features': []}, "invalid value for 'features': got [], expected an object"),
])
def test_rejects(settings, fragment):
    errors, _ = judge(settings, existing={'debug': True})
    assert len(errors) == 1, errors
    assert fragment in errors[0]
    assert errors[0].startswith('docker_daemon: ')


def test_every_problem_is_reported():
    errors, warnings = schema.check_config({'debug': 'yes', 'log-opts': {'max-file': 3},
                                            'registry-mirrors': ['http://x'], 'log-opt': {}})
    assert len(errors) == 4
    assert warnings == []


@pytest.mark.parametrize('settings', [
    {'registry-mirrors': ['https://mirror.example.com', 'https://mirror.example.com:5000/',
                          'https://[2001:db8::1]:443', 'HTTPS://Mirror.Example.com']},
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
    {'features': {'buildkit': True}, 'default-address-pools': [{'base': '10.10.0.0/16', 'size': 24}]},
    {'dns': ['1.1.1.1', '2606:4700:4700::1111'], 'labels': ['a=b'], 'max-concurrent-downloads': 6,
     'live-restore': True, 'log-level': 'warn', 'x-vendor': {'anything': [1, None]}},
], ids=lambda s: ','.join(s))
def test_accepts(settings):
    assert judge(settings, extra_keys=['x-vendor']) == ([], [])


# ---------------------------------------------------------------------------
# What gpuhost sets is judged strictly; what only the host has is warned about
# ---------------------------------------------------------------------------

def test_host_only_invalid_value_is_a_warning():
    errors, warnings = judge({'live-restore': True}, existing={'debug': 'yes', 'log-opts': {'max-file': 3}})
    assert errors == []
    assert len(warnings) == 2
    assert all(w.endswith('(kept as the host has it: gpuhost does not manage this key)') for w in warnings)
    assert any("'debug': got \"yes\"" in w for w in warnings)
    assert any("'log-opts.max-file': got 3" in w for w in warnings)


def test_the_same_invalid_value_in_settings_is_an_error():
    errors, warnings = judge({'debug': 'yes'}, existing={'live-restore': True})
    assert errors == ["docker_daemon: invalid value for 'debug': got \"yes\", expected a JSON boolean "
                      "(true or false, without quotes)"]
    assert warnings == []


def test_host_only_http_mirror_is_a_warning():
    errors, warnings = judge({'debug': True}, existing={'registry-mirrors': ['http://mirror.local']})
    assert errors == []
    assert warnings == ["docker_daemon: 'registry-mirrors[0]' is \"http://mirror.local\": it is plain http: "
                        "images come without TLS."]


def test_http_mirror_in_settings_needs_allow_insecure():
    errors, warnings = judge({'registry-mirrors': ['http://mirror.local']})
    assert errors == ["docker_daemon: 'registry-mirrors[0]' is \"http://mirror.local\": it is plain http: "
                      "images come without TLS. Use an https mirror, or %s to accept it." % INSECURE_HINT]
    assert warnings == []
    errors, warnings = judge({'registry-mirrors': ['http://mirror.local']}, allow_insecure=True)
    assert errors == []
    assert warnings == ["docker_daemon: 'registry-mirrors[0]' is \"http://mirror.local\": it is plain http: "
                        "images come without TLS (accepted because insecure settings are allowed)."]


def test_host_only_insecure_registries_are_a_warning():
    errors, warnings = judge({'debug': True}, existing={'insecure-registries': ['registry.local:5000']})
    assert errors == []
    assert len(warnings) == 1
    assert "'insecure-registries' is [\"registry.local:5000\"]" in warnings[0]
    assert warnings[0].endswith('(kept as the host has it: gpuhost does not manage this key)')


def test_insecure_registries_in_settings():
    errors, _ = judge({'insecure-registries': ['registry.local:5000']})
    assert errors == ["docker_daemon: 'insecure-registries' is [\"registry.local:5000\"]; images from these "
                      "registries are pulled without TLS verification. Remove the key, or %s to accept this."
                      % INSECURE_HINT]
    errors, warnings = judge({'insecure-registries': ['registry.local:5000']}, allow_insecure=True)
    assert errors == []
    assert warnings == ["docker_daemon: 'insecure-registries' is [\"registry.local:5000\"]; images from these "
                        "registries are pulled without TLS verification (accepted because insecure settings "
                        "are allowed)."]


def test_user_keys_none_judges_everything_strictly():
    errors, warnings = schema.check_config({'debug': 'yes', 'registry-mirrors': ['http://m']})
    assert len(errors) == 2
    assert warnings == []


def test_a_problem_between_a_host_key_and_a_user_key_is_an_error():
    # default-runtime on the host names a runtime the settings remove
    errors, _ = judge({'runtimes': {'custom': None}},
                      existing={'runtimes': {'custom': {'path': '/usr/bin/custom'}}, 'default-runtime': 'custom'})
    assert len(errors) == 1
    assert "invalid value for 'default-runtime': got \"custom\"" in errors[0]


def test_label_names_the_key_path():
    errors, _ = schema.check_config({'log-opts': {'max-file': 3}}, label=lambda path: '<%s>' % path)
    assert errors[0].startswith('docker_daemon: invalid value for <log-opts.max-file>: got 3')


# ---------------------------------------------------------------------------
# Unknown keys
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('key,value,suggestion', [
    ('log-opt', {'max-size': '10m'}, 'log-opts'),
    ('Debug', True, 'debug'),
    ('registry-mirror', ['https://mirror.example.com'], 'registry-mirrors'),
    ('LIVE-RESTORE', True, 'live-restore'),
])
def test_misspelt_key_in_settings_is_refused_with_a_suggestion(key, value, suggestion):
    errors, _ = judge({key: value})
    assert len(errors) == 1
    assert errors[0].startswith("docker_daemon: '%s': it is not a daemon.json key dockerd knows, and dockerd "
                                "refuses to start with it." % key)
    assert did_you_mean(suggestion).search(errors[0])
    assert errors[0].endswith('If this dockerd knows it, list it in docker_daemon_extra_keys.')
    assert judge({key: value}, extra_keys=[key]) == ([], [])


def test_unknown_key_without_a_close_match_has_no_suggestion():
    errors, _ = judge({'x-vendor-setting': 1})
    assert len(errors) == 1
    assert 'Did you mean' not in errors[0]


def test_unknown_keys_only_the_host_has_are_not_reported():
    assert judge({'debug': True}, existing={'x-vendor': {'a': 1}, 'Debug': 'yes'}) == ([], [])


def test_removing_an_unknown_key_is_fine():
    assert judge({'log-opt': None}, existing={'log-opt': {'max-size': '1m'}}) == ([], [])


def test_every_known_key_is_accepted_by_name():
    for key in schema.KNOWN_KEYS:
        assert schema.unknown_key_problem(key) is None, key


# ---------------------------------------------------------------------------
# Registry mirrors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('url,kind', [
    ('https://mirror.example.com', None),
    ('HTTPS://mirror.example.com', None),
    ('https://mirror.example.com/', None),
    ('https://mirror.example.com:443', None),
    ('https://[2001:db8::1]:5000', None),
    ('http://mirror.example.com', 'http'),
    ('HTTP://mirror.example.com/', 'http'),
    ('https://user:pw@mirror.example.com', 'invalid'),
    ('https://user@mirror.example.com', 'invalid'),
    ('https://mirror.example.com:99999', 'invalid'),
    ('https://mirror.example.com:port', 'invalid'),
    ('https://mirror.example.com/path', 'invalid'),
    ('https://mirror.example.com?x', 'invalid'),
    ('https://mirror.example.com/?', 'invalid'),
    ('https://mirror.example.com#f', 'invalid'),
    ('https://mirror.example.com\n', 'invalid'),
    (' https://mirror.example.com', 'invalid'),
    ('https://mirror .example.com', 'invalid'),
    ('https://mirror.example.com\x00', 'invalid'),
    ('https://mirror.example.com\x7f', 'invalid'),
    ('ftp://mirror.example.com', 'invalid'),
    ('mirror.example.com', 'invalid'),
    ('https://', 'invalid'),
    ('https://[::1', 'invalid'),
    ('', 'invalid'),
    (None, 'invalid'),
    (['https://mirror.example.com'], 'invalid'),
])
def test_mirror_problem(url, kind):
    problem = schema.mirror_problem(url)
    assert (problem[0] if problem else None) == kind
    if problem:
        assert problem[1]


def test_mirror_message_does_not_show_a_password():
    errors, _ = judge({'registry-mirrors': ['https://user:s3cr3t@mirror.example.com']})
    assert len(errors) == 1
    assert 'user name or password' in errors[0]
    assert 's3cr3t' not in errors[0]


@hyp_settings(max_examples=300, deadline=None)
@given(url=st.text(max_size=40))
def test_property_mirror_with_white_space_or_control_characters_is_invalid(url):
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        assert schema.mirror_problem('https://mirror.example.com' + url)[0] == 'invalid'
        assert schema.mirror_problem(url + 'https://mirror.example.com')[0] == 'invalid'


# ---------------------------------------------------------------------------
# TCP sockets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('hosts,tcp', [
    (['unix:///var/run/docker.sock', 'fd://'], []),
    (['UNIX:///var/run/docker.sock', ' fd://3 '], []),
    (['tcp://0.0.0.0:2375'], ['tcp://0.0.0.0:2375']),
    (['0.0.0.0:2375'], ['0.0.0.0:2375']),
    ([':2375'], [':2375']),
    (['127.0.0.1:2375'], ['127.0.0.1:2375']),
    (['TCP://x:2375'], ['TCP://x:2375']),
    (['ssh://user@host'], ['ssh://user@host']),
    (['fd://', 'host.example.com', 3], ['host.example.com']),
    (None, []),
])
def test_tcp_hosts(hosts, tcp):
    assert schema.tcp_hosts(hosts) == tcp


LOCAL_SCHEMES = st.sampled_from(['unix', 'UNIX', 'Unix', 'fd', 'FD', 'Fd'])
SPACE = st.text(alphabet=' \t\n', max_size=2)


@hyp_settings(max_examples=300, deadline=None)
@given(entry=st.text(max_size=30).filter(lambda s: '://' not in s))
def test_property_an_entry_without_a_scheme_is_tcp(entry):
    assert schema.tcp_hosts([entry]) == [entry]


@hyp_settings(max_examples=300, deadline=None)
@given(scheme=st.text(min_size=1, max_size=8).filter(lambda s: '://' not in s
                                                      and s.strip().lower() not in ('unix', 'fd')),
       rest=st.text(max_size=20))
def test_property_any_scheme_but_unix_and_fd_is_tcp(scheme, rest):
    entry = scheme + '://' + rest
    assert schema.tcp_hosts([entry]) == [entry]


@hyp_settings(max_examples=300, deadline=None)
@given(before=SPACE, scheme=LOCAL_SCHEMES, rest=st.text(max_size=20), after=SPACE)
def test_property_unix_and_fd_entries_are_not_tcp(before, scheme, rest, after):
    assert schema.tcp_hosts([before + scheme + '://' + rest + after]) == []


TCP_ENTRIES = ['0.0.0.0:2375', ':2375', '127.0.0.1:2375', 'TCP://x:2375', 'tcp://0.0.0.0:2375',
               'ssh://admin@host']


@pytest.mark.parametrize('entry', TCP_ENTRIES)
def test_tcp_host_without_tlsverify_is_refused(entry):
    errors, _ = judge({'hosts': ['unix:///var/run/docker.sock', entry]})
    assert errors == [
        "docker_daemon: 'hosts' has [\"%s\"], a TCP socket without tlsverify: anyone who can reach it gets "
        "root on this host. Set tlsverify: true with tlscacert, tlscert and tlskey, listen on unix:// or "
        "fd:// only, or %s to accept this." % (entry, INSECURE_HINT)]


@pytest.mark.parametrize('entry', TCP_ENTRIES)
def test_tcp_host_with_allow_insecure_is_a_warning(entry):
    errors, warnings = judge({'hosts': [entry]}, allow_insecure=True)
    assert errors == []
    assert len(warnings) == 1
    assert entry in warnings[0]
    assert warnings[0].endswith('(accepted because insecure settings are allowed).')


@pytest.mark.parametrize('entry', TCP_ENTRIES)
def test_tcp_host_with_tlsverify_is_fine(entry):
    assert judge({'hosts': [entry], 'tlsverify': True}) == ([], [])
    assert judge({'hosts': [entry]}, existing={'tlsverify': True}) == ([], [])
    assert judge({'hosts': [entry]}, tls_verify_flag=True) == ([], [])


@pytest.mark.parametrize('extra', [{}, {'tls': True}, {'tlsverify': False}])
def test_tls_without_verify_does_not_count(extra):
    errors, _ = judge(dict({'hosts': ['tcp://0.0.0.0:2376']}, **extra))
    assert len(errors) == 1
    assert 'a TCP socket without tlsverify' in errors[0]


def test_removing_tlsverify_under_a_tcp_host_is_refused():
    errors, _ = judge({'tlsverify': None}, existing={'hosts': ['tcp://0.0.0.0:2376'], 'tlsverify': True})
    assert len(errors) == 1
    assert 'a TCP socket without tlsverify' in errors[0]


def test_host_only_tcp_socket_is_a_warning():
    errors, warnings = judge({'debug': True}, existing={'hosts': ['0.0.0.0:2375']})
    assert errors == []
    assert len(warnings) == 1
    assert '"0.0.0.0:2375"' in warnings[0]


@pytest.mark.parametrize('hosts', [['unix:///var/run/docker.sock'], ['fd://'], []])
def test_local_sockets_are_fine(hosts):
    assert judge({'hosts': hosts}) == ([], [])


# ---------------------------------------------------------------------------
# Reload, live-restore, flags
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('keys,expected', [
    ([], False),
    (['debug'], True),
    (['runtimes', 'default-runtime'], True),
    (['registry-mirrors', 'insecure-registries', 'live-restore', 'labels', 'shutdown-timeout',
      'max-concurrent-downloads', 'max-concurrent-uploads', 'max-download-attempts',
      'authorization-plugins', 'allow-nondistributable-artifacts'], True),
    (['runtimes', 'log-opts'], False),
    (['data-root'], False),
    (['features'], False),
    (['hosts'], False),
    (iter(['debug']), True),
])
def test_classify_reload(keys, expected):
    assert schema.classify_reload(keys) is expected


@pytest.mark.parametrize('keys,unsafe', [
    (['debug', 'log-level'], []),
    (['bip', 'debug'], ['bip']),
    (['storage-driver', 'data-root', 'exec-opts', 'default-address-pools'],
     ['data-root', 'default-address-pools', 'exec-opts', 'storage-driver']),
    (iter(['userns-remap', 'userns-remap']), ['userns-remap']),
])
def test_live_restore_unsafe(keys, unsafe):
    assert schema.live_restore_unsafe(keys) == unsafe


def test_unsafe_keys_need_a_restart():
    assert not schema.LIVE_RESTORE_UNSAFE_KEYS & schema.RELOADABLE_KEYS
    assert schema.LIVE_RESTORE_UNSAFE_KEYS <= schema.KNOWN_KEYS
    assert schema.RELOADABLE_KEYS <= schema.KNOWN_KEYS


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
    assert schema.flag_keys(name) == keys


def test_flag_keys_name_known_keys():
    for paths in schema.FLAG_KEYS.values():
        for path in paths:
            assert path[0] in schema.KNOWN_KEYS, path
