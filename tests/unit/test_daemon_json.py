"""daemon.json as data (module_utils/gpuhost_daemon_json.py): parse, read, merge, compare, format."""

import json

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from json_strategies import JSON_OBJECTS
import plugin_loader

plugin_loader.use_module_utils()

from ansible.module_utils import gpuhost_daemon_json as dj  # noqa: E402

Error = dj.DaemonConfigError


# ---------------------------------------------------------------------------
# Parsing text
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('text', ['', '   \n\t\n', '\ufeff', '\ufeff  \n'])
def test_empty_text_is_an_empty_object(text):
    assert dj.parse_config_text(text, 'daemon.json') == ({}, [])


def test_bom_is_ignored_when_parsing():
    assert dj.parse_config_text('\ufeff{"debug": true}', 'daemon.json') == ({'debug': True}, [])


def test_duplicate_keys_are_listed_and_the_last_value_kept():
    data, duplicates = dj.parse_config_text('{"debug": false, "debug": true, "x": {"a": 1, "a": 2}}', 'p')
    assert data == {'debug': True, 'x': {'a': 2}}
    assert sorted(duplicates) == ['a', 'debug']


def test_malformed_json_names_path_line_and_column():
    with pytest.raises(Error) as info:
        dj.parse_config_text('{\n    "debug": true\n    "live-restore": true\n}\n', '/etc/docker/daemon.json')
    assert info.value.msg == (
        "docker_daemon: /etc/docker/daemon.json is not valid JSON: Expecting ',' delimiter at line 3, "
        "column 5. The file was left untouched; fix it by hand or remove it.")
    assert info.value.details == {'line': 3, 'column': 5}


@pytest.mark.parametrize('constant', ['NaN', 'Infinity', '-Infinity'])
def test_non_json_numbers_are_rejected(constant):
    with pytest.raises(Error, match='is not valid JSON: %s is not allowed in JSON' % constant):
        dj.parse_config_text('{"mtu": %s}' % constant, 'p')


@pytest.mark.parametrize('text,kind', [
    ('[1, 2]', 'an array'), ('"x"', 'a string'), ('null', 'null'), ('3', 'a number'), ('true', 'a boolean'),
])
def test_top_level_must_be_an_object(text, kind):
    with pytest.raises(Error, match='p must contain a JSON object at the top level, found %s\\.' % kind):
        dj.parse_config_text(text, 'p')


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(Error, match='is not valid JSON'):
        dj.parse_config_text('{"a": ' + '[' * 100000 + ']' * 100000 + '}', 'p')


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------

def test_read_missing_file(tmp_path):
    assert dj.read_config(str(tmp_path / 'daemon.json')) == {
        'data': {}, 'raw': None, 'text': None, 'bom': False, 'exists': False, 'warnings': []}


def test_read_keeps_raw_bytes_and_reports_bom(tmp_path):
    path = tmp_path / 'daemon.json'
    raw = b'\xef\xbb\xbf{"data-root": "/srv/docker"}\n'
    path.write_bytes(raw)
    current = dj.read_config(str(path))
    assert current['raw'] == raw
    assert current['bom'] is True
    assert current['text'] == '{"data-root": "/srv/docker"}\n'
    assert current['data'] == {'data-root': '/srv/docker'}
    assert current['exists'] is True


def test_read_without_bom(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_bytes(b'{"debug": true}')
    current = dj.read_config(str(path))
    assert (current['bom'], current['raw'], current['text']) == (False, b'{"debug": true}', '{"debug": true}')


def test_read_names_the_given_path_in_messages(tmp_path):
    target = tmp_path / 'real.json'
    target.write_bytes(b'{"labels": ["a=\xff"]}')
    with pytest.raises(Error) as info:
        dj.read_config(str(target), '/etc/docker/daemon.json')
    assert info.value.msg.startswith('docker_daemon: /etc/docker/daemon.json is not UTF-8 text '
                                     '(invalid byte at offset 15).')
    assert str(target) not in info.value.msg


def test_read_warns_about_duplicate_keys_once(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_text('{"debug": false, "debug": true, "debug": false}', encoding='utf-8')
    current = dj.read_config(str(path))
    assert current['data'] == {'debug': False}
    assert current['warnings'] == [
        "docker_daemon: key 'debug' appears more than once in %s; the last value is kept, as dockerd does."
        % path]


def test_read_a_directory_is_an_error(tmp_path):
    with pytest.raises(Error, match='cannot read'):
        dj.read_config(str(tmp_path))


# ---------------------------------------------------------------------------
# Settings, merging, comparing, formatting
# ---------------------------------------------------------------------------

def test_settings_must_be_a_dictionary():
    with pytest.raises(Error, match='settings must be a dictionary, got an array'):
        dj.normalize_settings(['debug'])


def test_settings_must_serialize():
    with pytest.raises(Error, match='settings cannot be written as JSON'):
        dj.normalize_settings({'mtu': float('nan')})
    with pytest.raises(Error, match='settings cannot be written as JSON'):
        dj.normalize_settings({'labels': [object()]})


def test_settings_become_plain_json():
    assert dj.normalize_settings({'labels': ('a=b',), 'log-opts': {'max-file': '3'}}) == {
        'labels': ['a=b'], 'log-opts': {'max-file': '3'}}


def test_merge_keeps_foreign_nested_keys_and_replaces_lists():
    existing = {'runtimes': {'foo': {'path': '/usr/bin/foo'}}, 'dns': ['1.1.1.1', '8.8.8.8'],
                'log-opts': {'max-file': '5'}}
    merged = dj.merge_settings(existing, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}},
                                          'dns': ['9.9.9.9'], 'log-opts': {'max-size': '10m'}})
    assert merged == {'runtimes': {'foo': {'path': '/usr/bin/foo'},
                                   'nvidia': {'path': 'nvidia-container-runtime'}},
                      'dns': ['9.9.9.9'], 'log-opts': {'max-file': '5', 'max-size': '10m'}}


def test_merge_null_removes_top_level_and_nested_keys():
    existing = {'experimental': True, 'log-opts': {'max-file': '3', 'max-size': '10m'}, 'debug': False}
    merged = dj.merge_settings(existing, {'experimental': None, 'log-opts': {'max-file': None}, 'gone': None})
    assert merged == {'log-opts': {'max-size': '10m'}, 'debug': False}


def test_merge_dictionary_over_a_scalar_replaces_it():
    assert dj.merge_settings({'log-opts': 'bad'}, {'log-opts': {'max-size': '1m', 'x': None}}) == {
        'log-opts': {'max-size': '1m'}}


def test_merge_key_order():
    merged = dj.merge_settings({'log-driver': 'local', 'log-opts': {'max-size': '10m', 'max-file': '2'},
                                'data-root': '/srv'},
                               {'labels': ['a=b'], 'log-opts': {'compress': 'true'}, 'debug': True})
    assert list(merged) == ['log-driver', 'log-opts', 'data-root', 'labels', 'debug']
    assert list(merged['log-opts']) == ['max-size', 'max-file', 'compress']


@pytest.mark.parametrize('left,right,equal', [
    ({'debug': True}, {'debug': 1}, False),
    ({'mtu': 1}, {'mtu': 1.0}, False),
    ({'a': 1, 'b': 2}, {'b': 2, 'a': 1}, True),
    ({'dns': ['1.1.1.1', '8.8.8.8']}, {'dns': ['8.8.8.8', '1.1.1.1']}, False),
    ({'labels': ['site=Zürich']}, {'labels': ['site=Z\u00fcrich']}, True),
])
def test_config_equal_is_type_exact_and_ignores_key_order(left, right, equal):
    assert dj.config_equal(left, right) is equal


def test_changed_keys_added_removed_changed():
    before = {'debug': True, 'mtu': 1500, 'dns': ['1.1.1.1'], 'data-root': '/srv'}
    after = {'debug': 1, 'mtu': 1500, 'dns': ['1.1.1.1'], 'labels': ['a=b']}
    assert dj.changed_keys(before, after) == ['data-root', 'debug', 'labels']


def test_format_config_layout():
    text = dj.format_config({'labels': ['site=Zürich'], 'runtimes': {'nvidia': {'args': []}}})
    assert text == ('{\n    "labels": [\n        "site=Zürich"\n    ],\n'
                    '    "runtimes": {\n        "nvidia": {\n            "args": []\n        }\n    }\n}\n')


def test_format_config_refuses_nan():
    with pytest.raises(ValueError):
        dj.format_config({'mtu': float('nan')})


@pytest.mark.parametrize('value,kind', [
    (None, 'null'), (True, 'a boolean'), (1, 'a number'), (1.5, 'a number'), ('x', 'a string'),
    ([], 'an array'), ({}, 'an object'), (object(), 'object'),
])
def test_json_kind(value, kind):
    assert dj.json_kind(value) == kind


def test_show_shortens_long_values():
    assert dj.show('x' * 200, limit=20) == '"' + 'x' * 16 + '...'
    assert dj.show({'a': 'ü'}) == '{"a": "ü"}'


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

PROPERTY = hyp_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_keys_not_in_settings_are_kept(existing, settings):
    merged = dj.merge_settings(existing, settings)
    for key, value in existing.items():
        if key not in settings:
            assert key in merged
            assert dj.canonical_json(merged[key]) == dj.canonical_json(value)


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_settings_win(existing, settings):
    merged = dj.merge_settings(existing, settings)
    for key, value in settings.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert dj.canonical_json(merged[key]) == dj.canonical_json(value)
        else:
            assert isinstance(merged[key], dict)


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_merge_is_idempotent(existing, settings):
    once = dj.merge_settings(existing, settings)
    twice = dj.merge_settings(once, settings)
    assert dj.canonical_json(once) == dj.canonical_json(twice)
    assert list(once) == list(twice)
    assert dj.changed_keys(once, twice) == []


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_merge_does_not_mutate_inputs(existing, settings):
    before = (dj.canonical_json(existing), dj.canonical_json(settings))
    dj.merge_settings(existing, settings)
    assert (dj.canonical_json(existing), dj.canonical_json(settings)) == before


@PROPERTY
@given(existing=JSON_OBJECTS, settings=JSON_OBJECTS)
def test_property_existing_key_order_kept(existing, settings):
    merged = dj.merge_settings(existing, settings)
    kept = [k for k in existing if k in merged]
    assert list(merged)[:len(kept)] == kept


@PROPERTY
@given(data=JSON_OBJECTS)
def test_property_format_round_trips(data):
    text = dj.format_config(data)
    parsed, duplicates = dj.parse_config_text(text, 'x')
    assert dj.config_equal(parsed, data)
    assert list(parsed) == list(data)
    assert duplicates == []


@PROPERTY
@given(before=JSON_OBJECTS, after=JSON_OBJECTS)
def test_property_changed_keys_empty_exactly_when_equal(before, after):
    assert (dj.changed_keys(before, after) == []) == dj.config_equal(before, after)


@PROPERTY
@given(data=JSON_OBJECTS)
def test_property_canonical_json_ignores_key_order(data):
    reordered = json.loads(json.dumps(dict(reversed(list(data.items())))))
    assert dj.canonical_json(reordered) == dj.canonical_json(data)
