"""The model registry: every model file in MODELS_DIR as a row with its history and metrics.

The files stay where Rasa writes them (`MODELS_DIR/<id>.tar.gz`); the table adds what a file
cannot say: who trained it, on which data, how it scored, whether it passed the regression
gate, and which one serves. Files found in MODELS_DIR without a row (trained by `bot train`,
or from before the registry) are adopted as `ready`, trained by "unknown".

Which model serves ("the active model"), in order:
1. the one activated last (`bot model activate`, rollback, the console, `bot run --retrain`);
2. before any activation: the newest adopted file, i.e. what `bot run` started before the
   registry existed; models trained through the registry are candidates and never take over
   by being newest, so a model that failed the gate cannot slip in on a restart;
3. otherwise the newest file.

Every function takes `Settings` and returns plain dataclasses (no ORM objects escape), so the
CLI and the console's pages can call them from any thread.
"""

from __future__ import annotations

import json
import logging
import tarfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog.db import session_factory
from bot.config import Settings
from bot.registry.models import (
    ACTIVE,
    READY,
    RETIRED,
    SOURCE_ADOPTED,
    SOURCE_REGISTRY,
    ModelActivation,
    ModelVersion,
)
from bot.timeutil import utcnow

log = logging.getLogger("bot.registry")

SUFFIX = ".tar.gz"


class RegistryError(Exception):
    """An operator mistake or a state that forbids the action; the message is Vietnamese and
    is shown as is (no traceback) by the CLI and the console."""


class UnknownModel(RegistryError):
    """No model matches what the operator typed."""


def model_id_for(path: Path) -> str:
    """The registry id of a model file: its name without `.tar.gz` (Rasa's readable stem)."""
    name = path.name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else path.stem


def read_model_metadata(path: Path) -> dict[str, Any]:
    """Rasa's `metadata.json` of a model file (model_id, trained_at…); RegistryError if none.

    Rasa's `GET /status` reports `model_id` from this file, which is how activation checks
    that a server really loaded the model it was given.
    """
    try:
        with tarfile.open(path, "r:gz") as tf:
            for member in tf:
                if member.name.lstrip("./") == "metadata.json":
                    handle = tf.extractfile(member)
                    if handle is not None:
                        return json.load(handle)
    except (OSError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise RegistryError(f"Không đọc được tệp mô hình {path.name}: {exc}") from exc
    raise RegistryError(f"Tệp {path.name} không phải mô hình Rasa (thiếu metadata.json)")


def iso(value: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with Z, for JSON and the console."""
    return value.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def loads(text: str | None) -> Any:
    """A JSON column's value (None stays None; a damaged value is reported, not raised)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"error": "invalid JSON in the registry"}


def dumps(value: Any) -> str | None:
    """JSON text for a column (Vietnamese kept readable in the database)."""
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class ModelInfo:
    """One registry row as the CLI and the console see it."""

    id: str
    file: str
    path: str
    status: str
    source: str
    created_at: datetime
    trained_by: str
    job_id: str | None
    parent_id: str | None
    previous_active_id: str | None
    config_path: str | None
    data_fingerprint: str | None
    rasa_model_id: str | None
    metrics: dict | None
    cv_metrics: dict | None
    gate: dict | None
    evaluated_at: datetime | None
    activated_at: datetime | None
    activated_by: str | None
    error: str | None
    file_exists: bool
    active: bool  # the model that serves (see the module docstring), whatever its status

    @property
    def accuracy(self) -> float | None:
        return (self.metrics or {}).get("accuracy")

    @property
    def weighted_f1(self) -> float | None:
        return (self.metrics or {}).get("weighted_f1")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times in ISO 8601 UTC); the shape of `bot model list --json`."""
        out = asdict(self)
        for key in ("created_at", "evaluated_at", "activated_at"):
            out[key] = iso(out[key])
        out["accuracy"] = self.accuracy
        out["weighted_f1"] = self.weighted_f1
        return out


def file_of(settings: Settings, row: ModelVersion) -> Path:
    """Where a row's model file is (rows keep the name only: MODELS_DIR may be moved)."""
    return settings.models_dir / row.file


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def effective_active(session: Session, settings: Settings) -> ModelVersion | None:
    """The row of the model that serves, by the rules of the module docstring."""
    rows = [r for r in session.query(ModelVersion).all()
            if file_of(settings, r).is_file() and not r.error]  # never an unreadable file
    activated = [r for r in rows if r.status == ACTIVE]
    if activated:
        return max(activated, key=lambda r: r.activated_at or r.created_at)
    if session.query(ModelVersion).filter(ModelVersion.status == ACTIVE).count():
        log.warning("the active model's file is missing; falling back to the newest model")
    for pool in ([r for r in rows if r.source == SOURCE_ADOPTED], rows):
        if pool:
            return max(pool, key=lambda r: _mtime(file_of(settings, r)))
    return None


def _info(settings: Settings, row: ModelVersion, active_id: str | None) -> ModelInfo:
    path = file_of(settings, row)
    return ModelInfo(
        id=row.id, file=row.file, path=str(path), status=row.status, source=row.source,
        created_at=row.created_at, trained_by=row.trained_by, job_id=row.job_id,
        parent_id=row.parent_id, previous_active_id=row.previous_active_id,
        config_path=row.config_path, data_fingerprint=row.data_fingerprint,
        rasa_model_id=row.rasa_model_id, metrics=loads(row.metrics),
        cv_metrics=loads(row.cv_metrics), gate=loads(row.gate), evaluated_at=row.evaluated_at,
        activated_at=row.activated_at, activated_by=row.activated_by, error=row.error,
        file_exists=path.is_file(), active=row.id == active_id,
    )


def info_of(session: Session, settings: Settings, row: ModelVersion) -> ModelInfo:
    """A row as `ModelInfo`, with the `active` flag computed now."""
    active = effective_active(session, settings)
    return _info(settings, row, active.id if active is not None else None)


def _adopt(session: Session, path: Path, source: str = SOURCE_ADOPTED,
           **fields: Any) -> ModelVersion:
    """A new row for a model file; the file's own metadata gives its id and time."""
    error = None
    try:
        meta = read_model_metadata(path)
    except RegistryError as exc:
        meta, error = {}, str(exc)
    try:
        created = datetime.fromisoformat(meta["trained_at"]).replace(tzinfo=None)
    except (KeyError, TypeError, ValueError):
        created = datetime.fromtimestamp(_mtime(path), timezone.utc).replace(tzinfo=None)
    row = ModelVersion(id=model_id_for(path), file=path.name, status=READY, source=source,
                       created_at=created, rasa_model_id=meta.get("model_id"), error=error)
    row.trained_by = fields.pop("trained_by", None) or "unknown"
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    return row


def sync(settings: Settings) -> list[str]:
    """Adopt model files that have no row yet; returns their ids.

    Two processes syncing at once may both try to adopt a file: the second insert hits the
    primary key and is simply dropped (the row exists, which is all that matters).
    """
    models_dir = settings.models_dir
    if not models_dir.is_dir():
        return []
    factory = session_factory(settings.database_url)
    with factory() as s:
        known = {r[0] for r in s.query(ModelVersion.id).all()}
    adopted = []
    for path in sorted(models_dir.glob(f"*{SUFFIX}"), key=_mtime):
        if model_id_for(path) in known:
            continue
        with factory() as s:
            _adopt(s, path)
            try:
                s.commit()
                adopted.append(model_id_for(path))
            except IntegrityError:
                s.rollback()
    if adopted:
        log.info("model registry: adopted %s", ", ".join(adopted))
    return adopted


def list_models(settings: Settings) -> list[ModelInfo]:
    """Every model, newest first, after adopting new files."""
    sync(settings)
    with session_factory(settings.database_url)() as s:
        active = effective_active(s, settings)
        active_id = active.id if active is not None else None
        rows = s.query(ModelVersion).all()
        infos = [_info(settings, r, active_id) for r in rows]
    return sorted(infos, key=lambda i: (i.created_at, i.id), reverse=True)


def resolve(session: Session, settings: Settings, ref: str) -> ModelVersion:
    """The row an operator means: an id, a file name or path, a unique prefix, or "active"."""
    ref = (ref or "").strip()
    if ref.lower() in ("active", "current", "dang-dung"):
        row = effective_active(session, settings)
        if row is None:
            raise UnknownModel("Chưa có mô hình nào đang dùng.")
        return row
    key = model_id_for(Path(ref)) if ref.endswith(SUFFIX) else ref
    row = session.get(ModelVersion, key)
    if row is not None:
        return row
    matches = [] if not key else (session.query(ModelVersion)
                                  .filter(ModelVersion.id.startswith(key, autoescape=True))
                                  .order_by(ModelVersion.id).all())
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(m.id for m in matches[:5])
        raise UnknownModel(f"'{ref}' khớp với nhiều mô hình ({names}…): hãy ghi rõ hơn.")
    raise UnknownModel(f"Không có mô hình '{ref}' trong sổ mô hình ({settings.models_dir}). "
                       "Xem danh sách: bot model list")


def get_model(settings: Settings, ref: str) -> ModelInfo:
    """One model by id, prefix or "active" (UnknownModel otherwise)."""
    sync(settings)
    with session_factory(settings.database_url)() as s:
        return info_of(s, settings, resolve(s, settings, ref))


def active_info(settings: Settings) -> ModelInfo | None:
    """The model that serves, if there is any."""
    sync(settings)
    with session_factory(settings.database_url)() as s:
        row = effective_active(s, settings)
        return _info(settings, row, row.id) if row is not None else None


def active_model(settings: Settings) -> Path | None:
    """The model file `bot run` starts (None when MODELS_DIR has no model yet)."""
    info = active_info(settings)
    return Path(info.path) if info is not None else None


def register_trained(settings: Settings, path: Path, by: str, **fields: Any) -> ModelInfo:
    """Record a model the registry just trained (a candidate: `ready`, never active by itself).

    If a concurrent `sync` adopted the file in the meantime, the adopted row is upgraded.
    """
    with session_factory(settings.database_url)() as s:
        row = s.get(ModelVersion, model_id_for(path))
        if row is None:
            row = _adopt(s, path, source=SOURCE_REGISTRY, trained_by=by, **fields)
        else:
            row.source, row.trained_by = SOURCE_REGISTRY, by
            for key, value in fields.items():
                setattr(row, key, value)
        s.commit()
        return info_of(s, settings, row)


def set_active(session: Session, settings: Settings, row: ModelVersion, by: str, kind: str,
               servers: list[dict] | None = None, gate_passed: bool | None = None) -> str | None:
    """Make `row` the active model in the database (no server is touched here).

    The model it replaces becomes `retired` and is remembered as `previous_active_id`, which
    is what rollback goes back to. Returns the replaced model's id. The caller commits.
    """
    previous = effective_active(session, settings)
    previous_id = previous.id if previous is not None else None
    if previous is not None and previous.id != row.id:
        previous.status = RETIRED  # it served (perhaps only as the newest file): now it does not
        row.previous_active_id = previous.id
    for other in session.query(ModelVersion).filter(ModelVersion.status == ACTIVE,
                                                    ModelVersion.id != row.id):
        other.status = RETIRED  # at most one active row, whatever happened before
    row.status = ACTIVE
    row.activated_at = utcnow()
    row.activated_by = by
    session.add(ModelActivation(model_id=row.id, previous_id=previous_id, kind=kind, by=by,
                                at=row.activated_at, servers=dumps(servers),
                                gate_passed=gate_passed))
    return previous_id


def mark_started(settings: Settings, path: Path, by: str) -> ModelInfo:
    """Record that a model was started outside the registry (`bot run --retrain`).

    `bot run --retrain` has always served the model it just trained; recording it keeps the
    registry's "active" equal to what actually runs, so a later rollback is meaningful.
    """
    sync(settings)
    with session_factory(settings.database_url)() as s:
        row = s.get(ModelVersion, model_id_for(path))
        if row is None:
            row = _adopt(s, path)
        if effective_active(s, settings) is not row or row.status != ACTIVE:
            set_active(s, settings, row, by=by, kind="start")
        s.commit()
        return info_of(s, settings, row)


@dataclass(frozen=True)
class ActivationRecord:
    """One line of the activation history."""

    model_id: str
    previous_id: str | None
    kind: str
    by: str
    at: datetime
    servers: list | None
    gate_passed: bool | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = iso(self.at)
        return out


def activation_history(settings: Settings, limit: int = 50) -> list[ActivationRecord]:
    """Which model served from when, newest first (the console's history)."""
    with session_factory(settings.database_url)() as s:
        rows = (s.query(ModelActivation).order_by(ModelActivation.id.desc()).limit(limit).all())
        return [ActivationRecord(r.model_id, r.previous_id, r.kind, r.by, r.at, loads(r.servers),
                                 r.gate_passed) for r in rows]


def operator_name(by: str | None = None) -> str:
    """`by` for CLI actions: the given name, else "cli:<login user>"."""
    if by:
        return by
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
