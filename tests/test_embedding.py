"""The e5 wrapper: the passage-vector cache on disk and what the vectors mean.

Fast: a handful of short texts through the bundled 4-bit model (no download, no server).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from bot import embedding
from bot.embedding import (
    DEFAULT_CACHE_PATHS,
    DIM,
    VectorCache,
    cosine,
    default_cache,
    embed_queries,
    embed_query,
    query_vector,
    shared_cache,
    text_key,
)

TEXTS = ["Cấp giấy phép lái xe", "Đăng ký khai sinh", "Cấp bản sao trích lục hộ tịch"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many passages reach the engine (the real one: the vectors are checked too)."""
    calls: list[int] = []
    real = embedding._embed_passages_now

    def spy(texts: list[str], progress: bool) -> np.ndarray:
        calls.append(len(texts))
        return real(texts, progress)

    monkeypatch.setattr(embedding, "_embed_passages_now", spy)
    return calls


def test_vectors_are_computed_once_then_read_from_disk(tmp_path: Path,
                                                       counted: list[int]) -> None:
    path = tmp_path / "var" / "passages.npz"
    first = VectorCache([path]).vectors(TEXTS)
    assert first.shape == (3, DIM) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-3)
    assert counted == [3] and path.exists()

    again = VectorCache([path])  # a new process: nothing to embed
    assert len(again) == 3
    assert np.allclose(again.vectors(TEXTS), first, atol=2e-3)  # float16 on disk
    assert counted == [3]

    again.vectors([*TEXTS, "Đăng ký kết hôn"])  # only the new text is embedded
    assert counted == [3, 1]
    assert len(VectorCache([path])) == 4


def test_a_corrupt_file_is_ignored_and_recomputed(tmp_path: Path, counted: list[int],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "passages.npz"
    VectorCache([path]).vectors(TEXTS[:1])
    data = path.read_bytes()
    for broken in (data[: len(data) // 2], b"not a zip", b""):
        path.write_bytes(broken)
        with caplog.at_level(logging.WARNING, logger="bot.embedding"):
            cache = VectorCache([path])
        assert len(cache) == 0
        assert "unreadable" in caplog.text
        caplog.clear()
        cache.vectors(TEXTS[:1])
        assert len(VectorCache([path])) == 1  # rewritten whole
    assert counted == [1, 1, 1, 1]

    np.savez_compressed(path, keys=np.array(["x"]), vectors=np.zeros((1, 7)))
    assert len(VectorCache([path])) == 0  # wrong width: ignored, not trusted


def test_read_only_paths_are_read_but_never_written(tmp_path: Path, counted: list[int]) -> None:
    writable, shipped = tmp_path / "var" / "passages.npz", tmp_path / "data" / "passages.npz"
    VectorCache([shipped]).vectors(TEXTS[:2])  # the snapshot a release ships
    before = shipped.read_bytes()
    assert counted == [2]

    cache = VectorCache([writable, shipped])
    cache.vectors(TEXTS)  # two from the snapshot, one embedded and written to var/
    assert counted == [2, 1]
    assert shipped.read_bytes() == before
    assert len(VectorCache([writable])) == 1

    # the writable file comes first: its vector wins over the snapshot's for the same text
    other = VectorCache([writable])
    key = text_key(TEXTS[0])
    with other._lock:
        other._rows[key] = np.full(DIM, 0.5, dtype=np.float16)
        other._dirty = True
    other.save()
    both = VectorCache([writable, shipped]).vectors(TEXTS[:1])
    assert np.allclose(both[0], np.full(DIM, 1 / np.sqrt(DIM)), atol=1e-3)


def test_processes_sharing_the_file_keep_each_others_vectors(tmp_path: Path) -> None:
    path = tmp_path / "passages.npz"
    a, b = VectorCache([path]), VectorCache([path])  # both read the file before either wrote
    a.vectors(TEXTS[:1])
    b.vectors(TEXTS[1:2])
    assert len(VectorCache([path])) == 2


def test_unwritable_cache_still_answers(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="bot.embedding"):
        vecs = VectorCache([blocker / "passages.npz"]).vectors(TEXTS[:1])
    assert vecs.shape == (1, DIM)
    assert "could not write" in caplog.text
    assert not list(tmp_path.glob(".*.tmp"))


def test_default_cache_paths() -> None:
    writable, shipped = DEFAULT_CACHE_PATHS
    assert writable.parts[-3:] == ("var", "vectors", "passages.npz")
    assert shipped.parts[-3:] == ("data", "vectors", "passages.npz")
    assert writable.parents[2] == shipped.parents[2]  # the checkout
    assert default_cache() is shared_cache(DEFAULT_CACHE_PATHS)
    assert default_cache().paths == list(DEFAULT_CACHE_PATHS)


def test_meaning() -> None:
    """A colloquial name is closer to the official one than to an unrelated paper."""
    passages = VectorCache([]).vectors(["giấy phép lái xe", "giấy khai sinh"])
    q = embed_query("bằng lái xe")
    near, far = cosine(passages, q)
    assert near > far + 0.02, (near, far)

    qs = embed_queries(["bằng lái xe", "đăng ký khai sinh cho con"])
    assert qs.shape == (2, DIM)
    assert np.allclose(qs[0], q, atol=1e-4)
    assert cosine(passages, qs[1]).argmax() == 1
    assert embed_queries([]).shape == (0, DIM)
    assert cosine(np.zeros((0, DIM), dtype=np.float32), q).shape == (0,)


def test_query_vector_is_computed_once_per_message() -> None:
    """The catalog search and the Q&A share one remembered vector per message; nobody can
    change the shared copy."""
    first = query_vector("bằng lái xe hết hạn")
    assert query_vector("bằng lái xe hết hạn") is first
    assert np.allclose(first, embed_query("bằng lái xe hết hạn"), atol=1e-4)
    with pytest.raises(ValueError):
        first[0] = 1.0
