"""Replacing files atomically, backups and their rotation (module_utils/gpuhost_atomic_file.py)."""

import datetime
import os
import stat

import pytest

import plugin_loader

plugin_loader.use_module_utils()

from ansible.module_utils import gpuhost_atomic_file as af  # noqa: E402


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_077():
    old = os.umask(0o077)
    yield
    os.umask(old)


@pytest.fixture
def target(tmp_path):
    return str(tmp_path / 'daemon.json')


def test_attributes(target):
    assert af.attributes(target) is None
    with open(target, 'w', encoding='utf-8') as handle:
        handle.write('{}')
    os.chmod(target, 0o640)
    st = os.stat(target)
    assert af.attributes(target) == (0o640, st.st_uid, st.st_gid)


def test_write_temp_is_private_until_complete(target, monkeypatch):
    seen = []
    real_fsync = os.fsync

    def fsync(fd):
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(af.os, 'fsync', fsync)
    tmp = af.write_temp(target, b'{"debug": true}\n', mode=0o644)
    assert seen[0] == 0o600
    assert mode_of(tmp) == 0o644
    assert os.path.dirname(tmp) == os.path.dirname(target)
    assert os.path.basename(tmp).startswith('.daemon.json.') and tmp.endswith('.tmp')
    with open(tmp, 'rb') as handle:
        assert handle.read() == b'{"debug": true}\n'
    assert not os.path.exists(target)


def test_write_temp_without_mode_stays_0600(target):
    assert mode_of(af.write_temp(target, b'x')) == 0o600


def test_write_temp_removes_its_file_on_failure(target, monkeypatch):
    def fsync(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(af.os, 'fsync', fsync)
    with pytest.raises(OSError):
        af.write_temp(target, b'x', mode=0o644)
    assert os.listdir(os.path.dirname(target)) == []


def test_write_atomic_replaces_and_leaves_nothing_behind(target, umask_077):
    with open(target, 'wb') as handle:
        handle.write(b'old')
    af.write_atomic(target, b'new', mode=0o644)
    with open(target, 'rb') as handle:
        assert handle.read() == b'new'
    assert mode_of(target) == 0o644
    assert os.listdir(os.path.dirname(target)) == ['daemon.json']


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(target, monkeypatch):
    with open(target, 'wb') as handle:
        handle.write(b'old')

    def fail(src, dst):
        raise OSError(16, 'Device or resource busy')

    monkeypatch.setattr(af.os, 'replace', fail)
    with pytest.raises(OSError):
        af.write_atomic(target, b'new')
    with open(target, 'rb') as handle:
        assert handle.read() == b'old'
    assert os.listdir(os.path.dirname(target)) == ['daemon.json']


@pytest.mark.skipif(os.geteuid() != 0, reason='changing a file owner needs root')
def test_write_temp_sets_the_owner(target):
    tmp = af.write_temp(target, b'x', mode=0o640, owner=(1234, 2345))
    st = os.stat(tmp)
    assert (st.st_uid, st.st_gid, mode_of(tmp)) == (1234, 2345, 0o640)


def test_make_parent_dirs(tmp_path, umask_077):
    path = tmp_path / 'a' / 'b' / 'daemon.json'
    assert af.make_parent_dirs(str(path)) == [str(tmp_path / 'a'), str(tmp_path / 'a' / 'b')]
    assert mode_of(tmp_path / 'a') == 0o755 and mode_of(tmp_path / 'a' / 'b') == 0o755
    assert af.make_parent_dirs(str(path)) == []


def test_remove_orphans(tmp_path):
    target = tmp_path / 'daemon.json'
    target.write_text('{}', encoding='utf-8')
    orphans = [tmp_path / '.daemon.json.abc123.tmp', tmp_path / '.daemon.json.x.tmp']
    others = [tmp_path / '.daemon.json.gpuhost-previous', tmp_path / 'daemon.json.tmp',
              tmp_path / '.other.json.abc.tmp', tmp_path / '.daemon.json.abc.tmp.keep',
              tmp_path / 'daemon.json.20240101T000000.bak']
    for path in orphans + others:
        path.write_text('x', encoding='utf-8')
    (tmp_path / '.daemon.json.dir.tmp').mkdir()
    (tmp_path / '.daemon.json.link.tmp').symlink_to(tmp_path / 'daemon.json')
    assert af.remove_orphans(str(target)) == sorted(str(p) for p in orphans)
    assert all(not p.exists() for p in orphans)
    assert all(p.exists() for p in others)
    assert (tmp_path / '.daemon.json.dir.tmp').is_dir()
    assert (tmp_path / '.daemon.json.link.tmp').is_symlink()
    assert target.read_text(encoding='utf-8') == '{}'


def test_remove_orphans_in_a_missing_directory(tmp_path):
    assert af.remove_orphans(str(tmp_path / 'missing' / 'daemon.json')) == []


def test_private_copy(umask_077):
    with af.private_copy(b'{"debug": true}', 'daemon.json') as path:
        directory = os.path.dirname(path)
        assert os.path.basename(path) == 'daemon.json'
        assert mode_of(directory) == 0o700
        assert mode_of(path) == 0o600
        with open(path, 'rb') as handle:
            assert handle.read() == b'{"debug": true}'
    assert not os.path.exists(directory)


def test_private_copy_is_removed_on_error():
    with pytest.raises(RuntimeError):
        with af.private_copy(b'x', 'daemon.json') as path:
            raise RuntimeError('validation crashed')
    assert not os.path.exists(os.path.dirname(path))


# ---------------------------------------------------------------------------
# Backups
# ---------------------------------------------------------------------------

def test_backup_name(target):
    now = datetime.datetime(2024, 5, 6, 7, 8, 9)
    first = af.backup_name(target, now)
    assert first == target + '.20240506T070809.bak'
    open(first, 'w').close()
    second = af.backup_name(target, now)
    assert second == target + '.20240506T070809.1.bak'
    os.symlink('/nonexistent', second)
    assert af.backup_name(target, now) == target + '.20240506T070809.2.bak'


@pytest.mark.parametrize('mode', [0o600, 0o640, 0o644])
def test_copy_preserving_keeps_mode_and_owner(tmp_path, mode, umask_077):
    st = os.stat(tmp_path)
    dest = str(tmp_path / 'copy')
    assert af.copy_preserving(b'old bytes', dest, (mode, st.st_uid, st.st_gid)) == dest
    with open(dest, 'rb') as handle:
        assert handle.read() == b'old bytes'
    assert mode_of(dest) == mode
    assert (os.stat(dest).st_uid, os.stat(dest).st_gid) == (st.st_uid, st.st_gid)


def test_copy_preserving_never_overwrites(tmp_path):
    existing = tmp_path / 'copy'
    existing.write_bytes(b'keep')
    with pytest.raises(FileExistsError):
        af.copy_preserving(b'new', str(existing), (0o600, os.getuid(), os.getgid()))
    assert existing.read_bytes() == b'keep'
    link = tmp_path / 'link'
    link.symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(FileExistsError):
        af.copy_preserving(b'new', str(link), (0o600, os.getuid(), os.getgid()))
    assert not (tmp_path / 'elsewhere').exists()


def make_backups(target, stamps):
    for name in stamps:
        open('%s.%s.bak' % (target, name), 'w').close()


def test_backups_of_oldest_first(target):
    make_backups(target, ['20240102T000000', '20240101T000000.10', '20240101T000000',
                          '20240101T000000.2'])
    for other in ('daemon.json.bak', 'daemon.json.2024.bak', 'other.json.20240101T000000.bak',
                  'daemon.json.20240101T000000.bak.old'):
        open(os.path.join(os.path.dirname(target), other), 'w').close()
    assert af.backups_of(target) == [target + '.20240101T000000.bak', target + '.20240101T000000.2.bak',
                                     target + '.20240101T000000.10.bak', target + '.20240102T000000.bak']


def test_rotate_backups_keeps_the_newest(target):
    stamps = ['2024010%dT000000' % day for day in range(1, 8)]
    make_backups(target, stamps)
    removed = af.rotate_backups(target, 5)
    assert removed == ['%s.%s.bak' % (target, s) for s in stamps[:2]]
    assert af.backups_of(target) == ['%s.%s.bak' % (target, s) for s in stamps[2:]]
    assert af.rotate_backups(target, 5) == []


def test_keep_backup_copies_with_mode_and_owner_and_rotates(tmp_path):
    target = str(tmp_path / "config.toml")
    made = []
    for second in range(4):
        now = datetime.datetime(2026, 11, 30, 12, 0, second)
        backup, removed = af.keep_backup(b"v%d\n" % second, target, (0o640, 1000, 1000), 2, now)
        made.append(backup)
        assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640
        assert (os.stat(backup).st_uid, os.stat(backup).st_gid) == (1000, 1000)
    assert removed == [made[1]]
    assert af.backups_of(target) == made[2:]
    _backup, removed = af.keep_backup(b"all\n", target, (0o600, 0, 0), 0)
    assert removed == [] and len(af.backups_of(target)) == 3


def test_stage_replacement_takes_the_old_file_s_mode_and_owner_or_the_new_mode(tmp_path, umask_077):
    target = tmp_path / "sub" / "config.toml"
    tmp = af.stage_replacement(str(target), b"new\n", None, 0o644)
    assert os.path.dirname(tmp) == str(target.parent)
    assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o644 and (os.stat(tmp).st_uid, os.stat(tmp).st_gid) == (0, 0)
    af.replace(tmp, str(target))
    tmp = af.stage_replacement(str(target), b"newer\n", (0o600, 1000, 1000))
    assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600 and os.stat(tmp).st_uid == 1000
    assert target.read_bytes() == b"new\n" and open(tmp, "rb").read() == b"newer\n"
    os.unlink(tmp)


def test_resolve_path_follows_a_link_and_says_so(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text("x = 1\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    assert af.resolve_path(str(link)) == (str(real), True)
    assert af.resolve_path(str(real)) == (str(real), False)
    assert af.resolve_path(str(tmp_path / "missing")) == (str(tmp_path / "missing"), False)
