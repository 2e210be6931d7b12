"""ORM tables of this package (on the shared `Base`, created by bot.catalog.schema.upgrade).

The registry lives in the same database as the catalog because every process that needs it
(the CLI, the console on the gateway, a background training worker) already reaches that
database, and PostgreSQL deployments get multi-host coordination (the training lock) for free.
Metrics and gate results are JSON text: they are read whole by the CLI and the console, never
queried by field, and their shape may grow without a schema change.

Statuses, spelled once (the columns are plain strings for SQLite and PostgreSQL):
* a model (`model_versions`): `ready` (trained, not serving) → `active` (serving) →
  `retired` (was active, replaced); a training attempt is a job, not a model, because the
  model's id (Rasa's file name) only exists once training succeeded;
* a training job (`model_training_jobs`): (`queued` →) `running` → `succeeded` | `failed` |
  `cancelled`; `queued` only when the gateway asks a trainer service (TRAINING_MODE=queue).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, Integer, String, Text

from bot.catalog.models import Base

READY, ACTIVE, RETIRED = "ready", "active", "retired"
RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"
# A training asked for in queue mode (TRAINING_MODE=queue), waiting for the trainer service.
QUEUED = "queued"
# Where a model row came from: trained through the registry, or found in MODELS_DIR (trained
# by `bot train` / `bot run`, or from before the registry existed).
SOURCE_REGISTRY, SOURCE_ADOPTED = "registry", "adopted"


class ModelVersion(Base):
    """One trained model file in MODELS_DIR, with who made it, its metrics and its gate."""

    __tablename__ = "model_versions"

    id = Column(String(200), primary_key=True)  # the file name without .tar.gz
    file = Column(Text, nullable=False)  # file name inside MODELS_DIR (the folder may move)
    status = Column(String(16), nullable=False, default=READY)
    source = Column(String(16), nullable=False, default=SOURCE_REGISTRY)
    created_at = Column(DateTime, nullable=False)  # UTC; Rasa's trained_at when known
    trained_by = Column(String(200), nullable=False, default="unknown")
    job_id = Column(String(32))
    parent_id = Column(String(200))  # the active model when its training started
    previous_active_id = Column(String(200))  # the model it replaced when last activated
    config_path = Column(Text)  # the Rasa config it was trained with (cross-validation)
    data_fingerprint = Column(String(64))  # training data + config + catalog, see training_job
    rasa_model_id = Column(String(64))  # metadata.json model_id: what Rasa's /status reports
    metrics = Column(Text)  # JSON: the held-out test file report (evaluation.py)
    cv_metrics = Column(Text)  # JSON: the cross-validation report, when one was run
    gate = Column(Text)  # JSON: the last regression-gate verdict against the active model
    evaluated_at = Column(DateTime)
    activated_at = Column(DateTime)
    activated_by = Column(String(200))
    error = Column(Text)  # why the file could not be read (adoption), for operators


class TrainingJob(Base):
    """One training run (background or foreground), with the progress a web page polls."""

    __tablename__ = "model_training_jobs"

    id = Column(String(32), primary_key=True)
    status = Column(String(16), nullable=False, default=RUNNING)
    requested_by = Column(String(200), nullable=False)
    config_path = Column(Text, nullable=False)
    options = Column(Text)  # JSON: evaluate, cross_validation, folds
    background = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)  # progress or heartbeat
    finished_at = Column(DateTime)
    percent = Column(Float, nullable=False, default=0.0)
    phase = Column(Text)  # Vietnamese, shown as is by the CLI and the console
    epoch = Column(Integer)
    epochs = Column(Integer)
    pid = Column(Integer)  # the process running it (a worker's is its process group too)
    host = Column(String(255))
    log_path = Column(Text)
    model_id = Column(String(200))
    error = Column(Text)


class ModelActivation(Base):
    """The history of which model served when, for the console and for audits."""

    __tablename__ = "model_activations"

    id = Column(Integer, primary_key=True)
    model_id = Column(String(200), nullable=False, index=True)
    previous_id = Column(String(200))
    kind = Column(String(16), nullable=False)  # activate | force | rollback | start
    by = Column(String(200), nullable=False)
    at = Column(DateTime, nullable=False)
    servers = Column(Text)  # JSON: per Rasa URL, what happened
    gate_passed = Column(Boolean)


class RegistryLock(Base):
    """A named lock as a row (training, activation), so it holds across hosts and processes.

    A file lock would not be seen by a second host on the same PostgreSQL database, and would
    outlive a crashed holder; here a holder keeps `heartbeat_at` fresh and a lock whose
    heartbeat is old, or whose process is gone on this host, is taken over (locks.py).
    """

    __tablename__ = "registry_locks"

    name = Column(String(64), primary_key=True)
    holder = Column(String(200), nullable=False)  # job id or "activation:<by>"
    pid = Column(Integer)
    host = Column(String(255))
    acquired_at = Column(DateTime, nullable=False)
    heartbeat_at = Column(DateTime, nullable=False)
