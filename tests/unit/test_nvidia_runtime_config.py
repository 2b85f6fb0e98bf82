"""Tests for the nvidia_runtime_config module (gpuhost_cli/ansible_plugins/modules).

The module merges settings into the NVIDIA container runtime's config.toml with tomlkit
(module_utils/gpuhost_runtime_toml.py); here it works on temporary files, in-process and
once through the real ``ansible`` command.
"""

import datetime
import os
import stat
from pathlib import Path

import pytest
import tomlkit
import yaml
from plugin_loader import ModuleFail, load_module, run_adhoc, run_main

nrc = load_module('nvidia_runtime_config')
Error = nrc.RuntimeConfigError

from ansible.module_utils import gpuhost_runtime_toml as rt  # noqa: E402  (importable once load_module ran)

# NVIDIA's default config.toml (nvidia-ctk config default, toolkit 1.14 to 1.17), with a
# note an administrator added above a table, a trailing comment and a key of the site's own.
STOCK = '''\
#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

# Site note: ldconfig is the Debian one on every image (ops ticket 4711).
[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
environment = []
#ldcache = "/etc/ld.so.cache"
ldconfig = "@/sbin/ldconfig.real"
load-kmods = true
#no-cgroups = false
#path = "/usr/bin/nvidia-container-cli"
#root = "/run/nvidia/driver"
#user = "root:video"

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "auto"  # set by the installer
runtimes = ["docker-runc", "runc", "crun"]
site-tracing = 3

[nvidia-container-runtime.modes]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime.modes.csv]
mount-spec-path = "/etc/nvidia-container-runtime/host-files-for-container.d"

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false

[nvidia-ctk]
path = "nvidia-ctk"
'''

CDI = {'nvidia-container-runtime': {'mode': 'cdi'}}


def apply(path, settings, **kwargs):
    return nrc.apply_config(str(path), settings, **kwargs)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def dir_listing(directory):
    return sorted(os.listdir(directory))


def backups(config):
    return sorted(str(config.parent / n) for n in os.listdir(config.parent) if n.endswith('.bak'))


def replaced_lines(before, after):
    """``(old line, new line)`` for each line that differs; both texts must have as many lines."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


def inserted_lines(before, after):
    """``(index, line)`` of the lines ``after`` has beyond ``before``, whose lines it keeps in order."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    added, position = [], 0
    for index, line in enumerate(new):
        if position < len(old) and line == old[position]:
            position += 1
        else:
            added.append((index, line))
    assert position == len(old), 'a line of the old text is missing or changed'
    return added


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'nvidia-container-runtime' / 'config.toml'
    path.parent.mkdir()
    path.write_text(STOCK, encoding='utf-8')
    path.chmod(0o644)
    return path


# ---------------------------------------------------------------------------
# Merging into NVIDIA's file
# ---------------------------------------------------------------------------

def test_setting_the_mode_changes_only_that_line(config):
    result = apply(config, CDI)
    after = config.read_text(encoding='utf-8')
    assert result['changed'] is True
    assert result['changed_keys'] == ['nvidia-container-runtime.mode']
    assert replaced_lines(STOCK, after) == [('mode = "auto"  # set by the installer\n',
                                              'mode = "cdi"  # set by the installer\n')]
    assert after == STOCK.replace('mode = "auto"', 'mode = "cdi"')
    assert result['config'] == rt.plain(tomlkit.parse(after))
    assert result['config']['nvidia-container-runtime'] == {
        'log-level': 'info', 'mode': 'cdi', 'runtimes': ['docker-runc', 'runc', 'crun'], 'site-tracing': 3,
        'modes': {'cdi': {'annotation-prefixes': ['cdi.k8s.io/'], 'default-kind': 'nvidia.com/gpu',
                          'spec-dirs': ['/etc/cdi', '/var/run/cdi']},
                  'csv': {'mount-spec-path': '/etc/nvidia-container-runtime/host-files-for-container.d'}},
    }
    assert result['config']['disable-require'] is False
    assert result['path'] == str(config)


def test_config_is_plain_data(config):
    result = apply(config, CDI)

    def walk(value):
        assert type(value) in (dict, list, str, bool, int, float), type(value)
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(result['config'])
    assert set(result['config']) == {
        'disable-require', 'supported-driver-capabilities', 'nvidia-container-cli', 'nvidia-container-runtime',
        'nvidia-container-runtime-hook', 'nvidia-ctk'}


def test_second_run_changes_nothing(config):
    settings = {'accept-nvidia-visible-devices-envvar-when-unprivileged': False,
                'nvidia-container-runtime': {'mode': 'cdi', 'runtimes': ['runc']},
                'nvidia-container-cli': {'no-cgroups': True}}
    first = apply(config, settings)
    assert first['changed'] is True
    assert first['changed_keys'] == ['accept-nvidia-visible-devices-envvar-when-unprivileged',
                                     'nvidia-container-cli.no-cgroups', 'nvidia-container-runtime.mode',
                                     'nvidia-container-runtime.runtimes']
    assert len(backups(config)) == 1
    content, mtime = config.read_bytes(), config.stat().st_mtime_ns

    second = apply(config, settings)
    assert second['changed'] is False
    assert second['changed_keys'] == []
    assert 'backup_file' not in second
    assert config.read_bytes() == content
    assert config.stat().st_mtime_ns == mtime
    assert len(backups(config)) == 1
    assert second['config'] == first['config']


def test_values_already_in_the_stock_file_leave_it_alone(config):
    result = apply(config, {'disable-require': False, 'nvidia-container-cli': {'environment': [],
                                                                               'load-kmods': True}})
    assert result['changed'] is False
    assert config.read_text(encoding='utf-8') == STOCK
    assert dir_listing(config.parent) == ['config.toml']


def test_new_keys_go_under_their_commented_default(config):
    result = apply(config, {'accept-nvidia-visible-devices-envvar-when-unprivileged': False,
                            'nvidia-container-cli': {'no-cgroups': True, 'user': 'root:video'}})
    after = config.read_text(encoding='utf-8')
    lines = after.splitlines()
    assert inserted_lines(STOCK, after) == [
        (2, 'accept-nvidia-visible-devices-envvar-when-unprivileged = false\n'),
        (15, 'no-cgroups = true\n'),
        (19, 'user = "root:video"\n'),
    ]
    assert lines[1] == '#accept-nvidia-visible-devices-envvar-when-unprivileged = true'
    assert lines[14] == '#no-cgroups = false'
    assert lines[18] == '#user = "root:video"'
    assert result['config']['accept-nvidia-visible-devices-envvar-when-unprivileged'] is False


def test_new_key_without_a_commented_default_follows_the_last_key(config):
    apply(config, {'swarm-resource-x': 'a', 'nvidia-container-runtime': {'extra': 1}})
    after = config.read_text(encoding='utf-8')
    # after the last key of its table: comments above the next header stay with it
    assert inserted_lines(STOCK, after) == [(4, 'swarm-resource-x = "a"\n'), (25, 'extra = 1\n')]
    assert after.splitlines()[3].startswith('supported-driver-capabilities = ')
    assert after.splitlines()[24] == 'site-tracing = 3'


def test_new_tables_are_created(config):
    result = apply(config, {
        'nvidia-container-runtime': {'modes': {'legacy': {'cuda-compat-mode': 'ldconfig'}}},
        'features': {'allow-ldconfig-from-container': False},
        'nvidia-ctk': {'extra': {'deep': {'list': [1, 2]}}},
    })
    after = config.read_text(encoding='utf-8')
    assert result['changed_keys'] == ['features.allow-ldconfig-from-container',
                                      'nvidia-container-runtime.modes.legacy.cuda-compat-mode',
                                      'nvidia-ctk.extra.deep.list']
    data = tomlkit.parse(after)
    assert data['nvidia-container-runtime']['modes']['legacy']['cuda-compat-mode'] == 'ldconfig'
    assert data['nvidia-container-runtime']['modes']['cdi']['default-kind'] == 'nvidia.com/gpu'
    assert data['features']['allow-ldconfig-from-container'] is False
    assert list(data['nvidia-ctk']['extra']['deep']['list']) == [1, 2]
    # every line of the old file is still there, in order; new lines only were added
    added = [line for _, line in inserted_lines(STOCK, after)]
    assert '[nvidia-container-runtime.modes.legacy]\n' in added
    assert 'cuda-compat-mode = "ldconfig"\n' in added
    assert '[features]\n' in added
    # a blank line still separates the next table's header, and the file ends with one newline
    assert '[nvidia-container-runtime.modes.legacy]\ncuda-compat-mode = "ldconfig"\n\n' \
           '[nvidia-container-runtime-hook]\n' in after
    assert after.endswith('\n') and not after.endswith('\n\n')


def test_empty_dictionary_sets_nothing(config):
    result = apply(config, {'nvidia-container-runtime': {}, 'unused': {}})
    assert result['changed'] is False
    assert 'unused' not in result['config']
    assert config.read_text(encoding='utf-8') == STOCK


def test_other_type_is_a_change_and_replaced_in_place(config):
    config.write_text('[nvidia-container-runtime]\nmode = 1\nlog-level = 1.0\nx = "true"\n', encoding='utf-8')
    result = apply(config, {'nvidia-container-runtime': {'mode': 'cdi', 'log-level': 1, 'x': True}})
    assert result['changed_keys'] == ['nvidia-container-runtime.log-level', 'nvidia-container-runtime.mode',
                                      'nvidia-container-runtime.x']
    assert config.read_text(encoding='utf-8') == '[nvidia-container-runtime]\nmode = "cdi"\nlog-level = 1\nx = true\n'
    # true == 1 in Python; TOML tells them apart
    config.write_text('a = 1\nb = true\nc = 0.0\n', encoding='utf-8')
    result = apply(config, {'a': True, 'b': 1, 'c': 0})
    assert result['changed_keys'] == ['a', 'b', 'c']
    assert config.read_text(encoding='utf-8') == 'a = true\nb = 1\nc = 0\n'


def test_lists_replace_the_array(config):
    result = apply(config, {'nvidia-container-runtime': {'runtimes': ['runc']}})
    assert result['config']['nvidia-container-runtime']['runtimes'] == ['runc']
    assert 'runtimes = ["runc"]\n' in config.read_text(encoding='utf-8')
    assert apply(config, {'nvidia-container-runtime': {'runtimes': ('runc',)}})['changed'] is False


def test_strings_are_quoted_and_escaped(config):
    value = 'quote " backslash \\ tab \t Zürich'
    apply(config, {'nvidia-container-cli': {'user': value}})
    assert tomlkit.parse(config.read_text(encoding='utf-8'))['nvidia-container-cli']['user'] == value
    assert apply(config, {'nvidia-container-cli': {'user': value}})['changed'] is False


@pytest.mark.parametrize('text,settings,key', [
    ('[nvidia-container-runtime]\nmode = "auto"\n', {'nvidia-container-runtime': 'cdi'}, 'nvidia-container-runtime'),
    ('[nvidia-container-runtime]\nmode = "auto"\n', {'nvidia-container-runtime': {'mode': {'name': 'cdi'}}},
     'nvidia-container-runtime.mode'),
    ('nvidia-container-runtime = "auto"\n', {'nvidia-container-runtime': {'mode': 'cdi'}}, 'nvidia-container-runtime'),
    ('[[nvidia-container-runtime]]\nmode = "auto"\n', {'nvidia-container-runtime': {'mode': 'cdi'}},
     'nvidia-container-runtime'),
], ids=['table-to-value', 'value-to-table', 'value-at-top-to-table', 'array-of-tables'])
def test_table_and_value_conflicts_name_the_key(config, text, settings, key):
    config.write_text(text, encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(config, settings)
    msg = str(info.value)
    assert msg.startswith(f'nvidia_runtime_config: {key} is ')
    assert str(config) in msg
    assert info.value.details['key'] == key
    assert config.read_text(encoding='utf-8') == text
    assert dir_listing(config.parent) == ['config.toml']


def test_inline_dotted_and_split_tables_are_merged(config):
    text = ('nvidia-container-cli = { ldconfig = "@/sbin/ldconfig" }\n'
            'nvidia-ctk.path = "/usr/bin/nvidia-ctk"\n'
            '[nvidia-container-runtime]\nmode = "auto"\n'
            '[nvidia-container-runtime-hook]\npath = "hook"\n'
            '[nvidia-container-runtime.modes.cdi]\ndefault-kind = "x"\n')
    config.write_text(text, encoding='utf-8')
    settings = {'nvidia-container-cli': {'ldconfig': '@/sbin/ldconfig.real', 'load-kmods': True},
                'nvidia-ctk': {'path': 'nvidia-ctk', 'debug': True},
                'nvidia-container-runtime': {'mode': 'cdi', 'log-level': 'debug',
                                             'modes': {'cdi': {'default-kind': 'nvidia.com/gpu', 'x': 1}}}}
    result = apply(config, settings)
    data = rt.plain(tomlkit.parse(config.read_text(encoding='utf-8')))
    assert data == result['config']
    assert data['nvidia-container-cli'] == {'ldconfig': '@/sbin/ldconfig.real', 'load-kmods': True}
    assert data['nvidia-ctk'] == {'path': 'nvidia-ctk', 'debug': True}
    assert data['nvidia-container-runtime'] == {'mode': 'cdi', 'log-level': 'debug',
                                                'modes': {'cdi': {'default-kind': 'nvidia.com/gpu', 'x': 1}}}
    assert data['nvidia-container-runtime-hook'] == {'path': 'hook'}
    assert apply(config, settings)['changed'] is False


def test_crlf_file_is_merged(config):
    config.write_bytes(b'# runtime\r\n[nvidia-container-runtime]\r\nmode = "auto"\r\n')
    apply(config, CDI)
    assert config.read_bytes() == b'# runtime\r\n[nvidia-container-runtime]\r\nmode = "cdi"\r\n'


def test_dates_in_the_file_survive_and_are_returned_as_text(config):
    text = 'installed = 2024-05-06T07:08:09Z\nday = 2024-05-06\n[nvidia-container-runtime]\nmode = "auto"\n'
    config.write_text(text, encoding='utf-8')
    result = apply(config, CDI)
    assert result['config']['installed'] == '2024-05-06T07:08:09+00:00'
    assert result['config']['day'] == '2024-05-06'
    assert config.read_text(encoding='utf-8') == text.replace('"auto"', '"cdi"')


# ---------------------------------------------------------------------------
# Settings that TOML cannot hold
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('settings,fragment', [
    ({'nvidia-container-runtime': {'mode': None}}, 'settings.nvidia-container-runtime.mode is null'),
    ({'disable-require': None}, 'settings.disable-require is null'),
    ({'nvidia-container-runtime': {'runtimes': ['runc', None]}},
     'settings.nvidia-container-runtime.runtimes[1] is null'),
    ({'nvidia-container-runtime': {'runtimes': [['runc']]}},
     'settings.nvidia-container-runtime.runtimes[0] is an array'),
    ({'nvidia-container-runtime': {'runtimes': [{'a': 1}]}},
     'settings.nvidia-container-runtime.runtimes[0] is a table'),
    ({'nvidia-container-runtime.mode': 'cdi'},
     "the key 'nvidia-container-runtime.mode' in settings contains a dot; write tables as nested "
     "dictionaries (for example {'nvidia-container-runtime': {'mode': ...}})"),
    ({'nvidia-container-runtime': {'': 'cdi'}}, "settings.nvidia-container-runtime has the key ''"),
    ({'x': float('nan')}, 'settings.x is nan'),
    ({'x': {1, 2}}, 'settings.x is set'),
    ({'x': datetime.date(2024, 1, 1)}, 'settings.x is a date'),
], ids=['null', 'null-top', 'null-in-list', 'nested-list', 'table-in-list', 'dotted-key', 'empty-key', 'nan', 'set',
        'date'])
def test_settings_are_type_checked(config, settings, fragment):
    with pytest.raises(Error) as info:
        apply(config, settings)
    assert fragment in str(info.value)
    assert str(info.value).startswith('nvidia_runtime_config: ')
    assert config.read_text(encoding='utf-8') == STOCK


def test_settings_must_be_a_dictionary(config):
    with pytest.raises(Error, match='settings must be a dictionary, got an array'):
        apply(config, ['mode'])


# ---------------------------------------------------------------------------
# Reading odd files
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('bad,line,column', [
    ('[nvidia-container-runtime]\nmode = "auto\nlog-level = "info"\n', 2, None),
    ('[nvidia-container-runtime]\nmode = auto\n', 2, None),
    ('[nvidia-container-runtime\nmode = "auto"\n', 1, None),
], ids=['unterminated-string', 'bare-word', 'unclosed-header'])
def test_invalid_toml_names_path_line_and_column_and_touches_nothing(config, bad, line, column):
    config.write_text(bad, encoding='utf-8')
    with pytest.raises(Error) as info:
        apply(config, CDI)
    msg = str(info.value)
    assert msg.startswith(f'nvidia_runtime_config: {config} is not valid TOML: ')
    assert f'at line {line}, column ' in msg
    assert info.value.details['line'] == line
    assert isinstance(info.value.details['column'], int)
    assert 'left untouched' in msg
    assert config.read_text(encoding='utf-8') == bad
    assert dir_listing(config.parent) == ['config.toml']


def test_duplicate_key_is_invalid(config):
    bad = '[nvidia-container-runtime]\nmode = "auto"\nmode = "cdi"\n'
    config.write_text(bad, encoding='utf-8')
    with pytest.raises(Error, match='is not valid TOML'):
        apply(config, CDI)
    assert config.read_text(encoding='utf-8') == bad


def test_not_utf8_is_refused(config):
    config.write_bytes(b'# caf\xe9\n[nvidia-container-runtime]\nmode = "auto"\n')
    with pytest.raises(Error, match='is not UTF-8 text'):
        apply(config, CDI)
    assert config.read_bytes() == b'# caf\xe9\n[nvidia-container-runtime]\nmode = "auto"\n'


@pytest.mark.parametrize('content', ['', '\n\n', '# only a comment\n'])
def test_empty_file_is_filled(config, content):
    config.write_text(content, encoding='utf-8')
    config.chmod(0o640)
    result = apply(config, {'nvidia-container-runtime': {'mode': 'cdi'}, 'disable-require': False})
    after = config.read_text(encoding='utf-8')
    assert rt.plain(tomlkit.parse(after)) == {'disable-require': False, 'nvidia-container-runtime': {'mode': 'cdi'}}
    assert after.startswith(content.strip())
    assert result['changed_keys'] == ['disable-require', 'nvidia-container-runtime.mode']
    assert mode_of(config) == 0o640
    assert Path(result['backup_file']).read_text(encoding='utf-8') == content


def test_missing_file_and_directory_are_created_0644(tmp_path):
    old = os.umask(0o077)
    try:
        target = tmp_path / 'etc' / 'nvidia-container-runtime' / 'config.toml'
        result = apply(target, CDI)
    finally:
        os.umask(old)
    assert result['changed'] is True
    assert 'backup_file' not in result
    assert target.read_text(encoding='utf-8') == '[nvidia-container-runtime]\nmode = "cdi"\n'
    assert mode_of(target) == 0o644
    assert mode_of(target.parent) == 0o755
    if os.geteuid() == 0:
        assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)
    assert dir_listing(target.parent) == ['config.toml']


def test_symlink_is_followed_and_kept(tmp_path, config):
    link = tmp_path / 'link.toml'
    link.symlink_to(config)
    apply(link, CDI)
    assert link.is_symlink()
    assert 'mode = "cdi"' in config.read_text(encoding='utf-8')


# ---------------------------------------------------------------------------
# Mode, owner, backups, temporary files
# ---------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason='changing a file owner needs root')
def test_mode_and_owner_are_kept_by_the_file_and_its_backup(config):
    os.chown(config, 1234, 2345)
    config.chmod(0o640)
    result = apply(config, CDI)
    for path in (config, Path(result['backup_file'])):
        st = path.stat()
        assert (st.st_uid, st.st_gid, mode_of(path)) == (1234, 2345, 0o640)
    assert Path(result['backup_file']).read_text(encoding='utf-8') == STOCK


def test_private_file_stays_private(config):
    config.chmod(0o600)
    result = apply(config, CDI)
    assert mode_of(config) == 0o600
    assert mode_of(result['backup_file']) == 0o600


def test_backup_is_named_and_rotated(config):
    start = datetime.datetime(2024, 1, 1)
    results = []
    for day in range(7):
        results.append(apply(config, {'nvidia-container-runtime': {'log-level': f'level{day}'}}, backup_keep=5,
                             now=start + datetime.timedelta(days=day)))
    made = [r['backup_file'] for r in results]
    assert made[0] == f'{config}.20240101T000000.bak'
    assert 'log-level = "level1"' in Path(made[2]).read_text(encoding='utf-8')
    assert 'log-level = "level5"' in Path(made[6]).read_text(encoding='utf-8')
    assert backups(config) == made[2:]
    assert results[5]['removed_backups'] == [made[0]]
    assert results[6]['removed_backups'] == [made[1]]
    assert 'removed_backups' not in results[4]


def test_backup_keep_zero_keeps_all_and_backup_false_makes_none(config):
    for day in range(3):
        apply(config, {'nvidia-container-runtime': {'log-level': f'level{day}'}}, backup_keep=0,
              now=datetime.datetime(2024, 1, 1 + day))
    assert len(backups(config)) == 3
    result = apply(config, CDI, backup=False)
    assert result['changed'] is True
    assert 'backup_file' not in result
    assert len(backups(config)) == 3


def test_orphaned_temp_files_are_removed_by_a_real_run(config):
    orphan = config.parent / '.config.toml.k1ll3d.tmp'
    orphan.write_text('[nvidia-container-runtime', encoding='utf-8')
    checked = apply(config, CDI, check_mode=True)
    assert 'removed_temp_files' not in checked
    assert orphan.exists()
    result = apply(config, {'disable-require': False})
    assert result['changed'] is False
    assert result['removed_temp_files'] == [str(orphan)]
    assert dir_listing(config.parent) == ['config.toml']


def test_candidate_that_does_not_read_back_is_not_written(config, monkeypatch):
    # A rendering bug of the installed tomlkit must not reach the file.
    monkeypatch.setattr(rt.tomlkit, 'dumps', lambda doc: STOCK)
    with pytest.raises(Error) as info:
        apply(config, CDI)
    assert 'failed its check (tomlkit reads back other data than merged' in str(info.value)
    assert config.read_text(encoding='utf-8') == STOCK
    assert dir_listing(config.parent) == ['config.toml']


# ---------------------------------------------------------------------------
# Check mode and diff
# ---------------------------------------------------------------------------

def test_check_mode_writes_nothing_and_tells_the_truth(config):
    mtime = config.stat().st_mtime_ns
    result = apply(config, CDI, check_mode=True)
    assert result['changed'] is True
    assert result['changed_keys'] == ['nvidia-container-runtime.mode']
    assert result['config']['nvidia-container-runtime']['mode'] == 'cdi'
    assert result['diff'] == {'before': STOCK, 'after': STOCK.replace('"auto"', '"cdi"'),
                              'before_header': str(config), 'after_header': str(config)}
    assert 'backup_file' not in result
    assert config.read_text(encoding='utf-8') == STOCK
    assert config.stat().st_mtime_ns == mtime
    assert dir_listing(config.parent) == ['config.toml']
    assert apply(config, {'disable-require': False}, check_mode=True)['changed'] is False


def test_check_mode_creates_no_file_or_directory(tmp_path):
    target = tmp_path / 'nvidia-container-runtime' / 'config.toml'
    result = apply(target, CDI, check_mode=True)
    assert result['changed'] is True
    assert result['diff']['before'] == ''
    assert result['diff']['after'] == '[nvidia-container-runtime]\nmode = "cdi"\n'
    assert not target.parent.exists()


# ---------------------------------------------------------------------------
# main()
# ---------------------------------------------------------------------------

def test_main_returns_diff_only_when_asked(config):
    args = {'path': str(config), 'settings': CDI}
    checked = run_main(nrc, args, check_mode=True, diff=True)
    assert checked['changed'] is True
    assert checked['diff']['after'] == STOCK.replace('"auto"', '"cdi"')
    assert config.read_text(encoding='utf-8') == STOCK
    applied = run_main(nrc, dict(args, backup=False))
    assert applied['changed'] is True
    assert 'diff' not in applied and 'backup_file' not in applied
    assert run_main(nrc, args, diff=True)['diff']['before'] == run_main(nrc, args, diff=True)['diff']['after']


def test_main_fails_with_the_error_and_the_key(config):
    with pytest.raises(ModuleFail) as info:
        run_main(nrc, {'path': str(config), 'settings': {'nvidia-container-runtime': 'cdi'}})
    assert info.value.result['key'] == 'nvidia-container-runtime'
    assert info.value.result['path'] == str(config)
    assert 'is a table in' in info.value.result['msg']


def test_main_without_tomlkit_says_how_to_install_it(config, monkeypatch):
    monkeypatch.setattr(nrc, 'tomlkit', None)
    with pytest.raises(ModuleFail) as info:
        run_main(nrc, {'path': str(config), 'settings': CDI})
    assert info.value.result['msg'] == (
        'python3-tomlkit is not installed on this host: the nvidia_container_toolkit role installs it '
        '(apt install python3-tomlkit)')
    assert config.read_text(encoding='utf-8') == STOCK


def test_documentation_matches_the_module():
    doc = yaml.safe_load(nrc.DOCUMENTATION)
    assert doc['module'] == 'nvidia_runtime_config'
    assert doc['options']['path']['default'] == nrc.DEFAULT_PATH
    assert {name: (opt['type'], opt.get('default'), opt.get('required', False))
            for name, opt in doc['options'].items()} == {
        'path': ('path', '/etc/nvidia-container-runtime/config.toml', False),
        'settings': ('dict', None, True),
        'backup': ('bool', True, False),
        'backup_keep': ('int', 5, False),
    }
    assert any('python3-tomlkit' in line for line in doc['requirements'])
    assert set(yaml.safe_load(nrc.RETURN)) == {'path', 'changed_keys', 'config', 'backup_file', 'removed_backups',
                                              'removed_temp_files', 'diff'}
    examples = yaml.safe_load(nrc.EXAMPLES)
    assert {next(key for key in task if key not in ('name', 'register')) for task in examples} == {
        'nvidia_runtime_config', 'ansible.builtin.debug'}


# ---------------------------------------------------------------------------
# Through Ansible
# ---------------------------------------------------------------------------

def test_through_ansible(tmp_path, config):
    args = {'path': str(config), 'settings': {'nvidia-container-runtime': {'mode': 'cdi'},
                                              'accept-nvidia-visible-devices-envvar-when-unprivileged': False}}

    _, checked = run_adhoc('nvidia_runtime_config', args, tmp_path, '--check', '--diff')
    assert checked.get('failed') is not True, checked
    assert checked['changed'] is True
    assert checked['changed_keys'] == ['accept-nvidia-visible-devices-envvar-when-unprivileged',
                                       'nvidia-container-runtime.mode']
    assert checked['diff']['before'] == STOCK
    assert checked['diff']['before_header'] == str(config)
    assert 'mode = "cdi"  # set by the installer\n' in checked['diff']['after']
    assert config.read_text(encoding='utf-8') == STOCK

    _, applied = run_adhoc('nvidia_runtime_config', args, tmp_path)
    assert applied.get('failed') is not True, applied
    assert applied['changed'] is True
    assert 'diff' not in applied
    assert config.read_text(encoding='utf-8') == checked['diff']['after']
    assert Path(applied['backup_file']).read_text(encoding='utf-8') == STOCK
    assert applied['config']['nvidia-container-runtime']['mode'] == 'cdi'
    assert applied['config']['accept-nvidia-visible-devices-envvar-when-unprivileged'] is False

    _, again = run_adhoc('nvidia_runtime_config', args, tmp_path, '--diff')
    assert again['changed'] is False
    assert again['diff']['before'] == again['diff']['after']

    rc, failed = run_adhoc('nvidia_runtime_config',
                           dict(args, settings={'nvidia-container-runtime': {'modes': 'cdi'}}), tmp_path)
    assert rc != 0
    assert failed['failed'] is True
    assert failed['msg'].startswith('nvidia_runtime_config: nvidia-container-runtime.modes is a table in ')
    assert failed['key'] == 'nvidia-container-runtime.modes'


def test_a_dry_run_without_tomlkit_is_skipped_and_says_what_a_real_run_does(config, monkeypatch):
    monkeypatch.setattr(nrc, 'tomlkit', None)
    result = run_main(nrc, {'path': str(config), 'settings': CDI}, check_mode=True)
    assert result['skipped'] is True and result['changed'] is False
    assert result['msg'] == ('Check mode: python3-tomlkit is not installed yet; a real run installs it with the '
                             'toolkit, then merges nvidia-container-runtime into %s.' % config)
    assert config.read_text(encoding='utf-8') == STOCK
