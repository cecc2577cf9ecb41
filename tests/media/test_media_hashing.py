"""One read, two digests, honest errors."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from photoindex.errors import ErrorCode, MediaError
from photoindex.media import hashing
from photoindex.media.hashing import FileBytes, read_and_hash, sha256_file

HELLO_SHA256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
HELLO_SHA1 = "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"


def test_known_digests(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world")
    result = read_and_hash(path, max_bytes=1024)
    assert isinstance(result, FileBytes)
    assert result.sha256 == HELLO_SHA256
    assert result.sha1 == HELLO_SHA1
    assert result.data == b"hello world"
    assert result.size == 11
    assert result.mtime_ns == os.stat(path).st_mtime_ns
    assert "hello" not in repr(result)  # repr never dumps the content
    assert sha256_file(path) == HELLO_SHA256


def test_real_photo_digests_match_hashlib(real):
    path = real.pillow("fujifilm.mpo")
    content = path.read_bytes()
    result = read_and_hash(str(path), max_bytes=len(content))  # exactly at the limit is allowed
    assert result.data == content
    assert result.size == len(content) == os.path.getsize(path)
    assert result.sha256 == hashlib.sha256(content).hexdigest()
    assert result.sha1 == hashlib.sha1(content).hexdigest()
    assert sha256_file(path, chunk_size=4096) == result.sha256  # many chunks, same digest


def test_one_read_and_both_digests_from_the_same_buffer(tmp_path, monkeypatch):
    path = tmp_path / "photo.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))

    reads: list[str] = []
    real_open = open

    class CountingFile:
        def __init__(self, *args, **kwargs):
            self._f = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def readall(self):
            reads.append("readall")
            return self._f.readall()

        def read(self, *args):
            reads.append("read")
            return self._f.read(*args)

    fed: dict[str, int] = {}

    def spy(name, factory):
        def make(data=b"", **kwargs):
            fed[name] = id(data)
            return factory(data, **kwargs)
        return make

    monkeypatch.setattr(hashing, "open", CountingFile, raising=False)
    monkeypatch.setattr(hashing.hashlib, "sha256", spy("sha256", hashlib.sha256))
    monkeypatch.setattr(hashing.hashlib, "sha1", spy("sha1", hashlib.sha1))
    result = read_and_hash(path, max_bytes=1 << 30)
    assert reads == ["readall"]
    assert fed["sha256"] == fed["sha1"] == id(result.data)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"x" * 5000)

    def no_open(*args, **kwargs):
        raise AssertionError("the file must not be read")

    monkeypatch.setattr(hashing, "open", no_open, raising=False)
    with pytest.raises(MediaError) as info:
        read_and_hash(path, max_bytes=1000)
    assert info.value.code is ErrorCode.FILE_TOO_LARGE
    assert info.value.details == {"size": 5003, "limit": 1000}
    assert "5003" in info.value.message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(MediaError) as info:
        read_and_hash(path, max_bytes=100)
    assert info.value.code is ErrorCode.FILE_EMPTY
    assert sha256_file(path) == hashlib.sha256(b"").hexdigest()


def test_missing_file(tmp_path):
    for target in (tmp_path / "nope.jpg", tmp_path / "no_dir" / "nope.jpg"):
        with pytest.raises(MediaError) as info:
            read_and_hash(target, max_bytes=100)
        assert info.value.code is ErrorCode.FILE_NOT_FOUND
        assert "nope.jpg" in info.value.message
        with pytest.raises(MediaError) as info:
            sha256_file(target)
        assert info.value.code is ErrorCode.FILE_NOT_FOUND
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    with pytest.raises(MediaError) as info:
        read_and_hash(not_a_dir / "child.jpg", max_bytes=100)
    assert info.value.code is ErrorCode.FILE_NOT_FOUND


def test_directory_is_unreadable(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    with pytest.raises(MediaError) as info:
        read_and_hash(folder, max_bytes=100)
    assert info.value.code is ErrorCode.FILE_UNREADABLE
    assert "directory" in info.value.message
    with pytest.raises(MediaError) as info:
        sha256_file(folder)
    assert info.value.code is ErrorCode.FILE_UNREADABLE


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their mode (the directory case covers FILE_UNREADABLE)")
def test_permission_denied(tmp_path):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0")
    path.chmod(0)
    try:
        with pytest.raises(MediaError) as info:
            read_and_hash(path, max_bytes=100)
        assert info.value.code is ErrorCode.FILE_UNREADABLE
        assert "permission" in info.value.message
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.timeout(10)
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(MediaError) as info:
        read_and_hash(fifo, max_bytes=100)
    assert info.value.code is ErrorCode.FILE_UNREADABLE
    assert "regular" in info.value.message
    with pytest.raises(MediaError) as info:
        sha256_file(fifo)
    assert info.value.code is ErrorCode.FILE_UNREADABLE


def test_concurrent_reads_agree(tmp_path):
    path = tmp_path / "shared.bin"
    path.write_bytes(os.urandom(512 * 1024))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    results: list[str] = []

    def work():
        results.append(read_and_hash(path, max_bytes=1 << 20).sha256)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 8
