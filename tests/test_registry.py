"""The model registry without Rasa processes: adoption, the active model, the lock, progress
parsing, the gate's arithmetic, offline activation and rollback, the CLI's errors, and the
held-out test file. The real training / `rasa test nlu` / hot swap are in
test_registry_flow.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.catalog.db import session_factory
from bot.config import ROOT, Settings
from bot.registry import locks
from bot.registry.activation import GateRefused, activate, rollback
from bot.registry.evaluation import (
    TEST_FILE,
    compare,
    file_sha256,
    gate_for,
    intent_changes,
    read_intent_report,
)
from bot.registry.models import RUNNING, ModelVersion, TrainingJob
from bot.registry.registry import (
    RegistryError,
    UnknownModel,
    activation_history,
    active_model,
    get_model,
    list_models,
    mark_started,
    register_trained,
    sync,
)
from bot.registry.training_job import (
    TrainingBusy,
    TrainingProgress,
    current_job,
    get_job,
    start_training,
    train_model,
)
from bot.text import nfc, strip_accents
from tests.conftest import SHARED, free_port

# ---------------------------------------------------------------------------- helpers


def fake_model(models_dir: Path, name: str, model_id: str, age: float = 0.0) -> Path:
    """A file in Rasa's model format (a .tar.gz with metadata.json), `age` seconds old."""
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{name}.tar.gz"
    trained = datetime(2026, 11, 27, 10, 0, 0) - timedelta(seconds=age)
    meta = json.dumps({"model_id": model_id, "trained_at": trained.isoformat(),
                       "assistant_id": "dvc-assistant"}).encode()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("metadata.json")
        info.size = len(meta)
        tf.addfile(info, io.BytesIO(meta))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture()
def reg(tmp_path: Path) -> Settings:
    """Registry settings: an empty database, an empty models folder, no Rasa running."""
    return Settings.from_env({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        "MODELS_DIR": str(tmp_path / "models"),
        "RASA_URLS": f"http://127.0.0.1:{free_port()}",  # nothing listens there
    })


def metrics(accuracy: float, weighted_f1: float, per_intent: dict[str, float],
            sha: str) -> dict:
    """A report shaped like evaluation.read_intent_report's."""
    return {"accuracy": accuracy, "weighted_f1": weighted_f1, "macro_f1": weighted_f1,
            "support": 10 * len(per_intent), "test_sha256": sha,
            "intents": {k: {"precision": v, "recall": v, "f1": v, "support": 10,
                            "confused_with": {}} for k, v in per_intent.items()}}


def store_metrics(settings: Settings, model_id: str, value: dict) -> None:
    with session_factory(settings.database_url)() as s:
        s.get(ModelVersion, model_id).metrics = json.dumps(value)
        s.commit()


# ---------------------------------------------------------------------------- settings


def test_settings_gate_margin_and_rasa_urls() -> None:
    from bot.stack import service_env

    s = Settings.from_env({"MODEL_GATE_MARGIN": "0.05",
                           "RASA_URLS": "http://10.0.0.1:5005/, http://10.0.0.2:5005"})
    assert s.model_gate_margin == 0.05
    assert s.rasa_urls == ("http://10.0.0.1:5005", "http://10.0.0.2:5005")
    env = service_env(s)
    assert env["MODEL_GATE_MARGIN"] == "0.05"
    assert Settings.from_env({k: env[k] for k in ("MODEL_GATE_MARGIN", "RASA_URLS")}) \
        .rasa_urls == s.rasa_urls
    default = Settings.from_env({"RASA_PORT": "5123"})
    assert default.model_gate_margin == 0.01
    assert default.rasa_urls == ("http://127.0.0.1:5123",)
    with pytest.raises(SystemExit):
        Settings.from_env({"MODEL_GATE_MARGIN": "một chút"})


# ---------------------------------------------------------------------------- adoption


def test_adoption_listing_and_the_active_model(reg: Settings) -> None:
    old = fake_model(reg.models_dir, "20261101-100000-old-model", "aaa", age=3600)
    new = fake_model(reg.models_dir, "20261102-100000-new-model", "bbb", age=60)
    (reg.models_dir / "20261103-100000-broken.tar.gz").write_bytes(b"not a tarball")

    models = list_models(reg)
    by_id = {m.id: m for m in models}
    assert set(by_id) == {"20261101-100000-old-model", "20261102-100000-new-model",
                          "20261103-100000-broken"}
    assert all(m.status == "ready" and m.source == "adopted" and m.trained_by == "unknown"
               for m in models)
    assert by_id["20261102-100000-new-model"].rasa_model_id == "bbb"
    assert "Không đọc được" in by_id["20261103-100000-broken"].error
    # Before any activation the newest adopted file serves, as `bot run` did before (but
    # never a file that is not a readable model).
    assert active_model(reg) == new
    assert [m.id for m in models if m.active] == ["20261102-100000-new-model"]
    assert sync(reg) == []  # adopted once
    assert [m.id for m in list_models(reg)] == [m.id for m in models]

    # A candidate trained through the registry never serves just by being newest.
    candidate = fake_model(reg.models_dir, "20261104-100000-candidate", "ccc", age=0)
    register_trained(reg, candidate, "tester", parent_id=None)
    info = get_model(reg, "20261104")
    assert info.source == "registry" and info.trained_by == "tester" and not info.active
    assert active_model(reg) == new
    assert get_model(reg, "active").path == str(new)
    old.unlink()  # a deleted file stays listed, flagged
    assert get_model(reg, "20261101-100000-old-model").file_exists is False


def test_active_model_is_the_last_activated_and_falls_back_when_its_file_is_gone(
        reg: Settings) -> None:
    first = fake_model(reg.models_dir, "20261101-100000-first", "a1", age=3600)
    second = fake_model(reg.models_dir, "20261102-100000-second", "a2", age=60)
    assert active_model(reg) == second
    mark_started(reg, first, by="cli:bot run")  # `bot run --retrain` records what it started
    assert active_model(reg) == first
    info = get_model(reg, "20261101-100000-first")
    assert info.status == "active" and info.activated_by == "cli:bot run"
    assert info.previous_active_id == "20261102-100000-second"
    first.unlink()
    assert active_model(reg) == second
    assert get_model(reg, "20261101-100000-first").file_exists is False


def test_unknown_and_ambiguous_ids_are_operator_errors(reg: Settings) -> None:
    fake_model(reg.models_dir, "20261101-100000-alpha", "a1")
    fake_model(reg.models_dir, "20261101-110000-beta", "a2")
    with pytest.raises(UnknownModel, match="Không có mô hình 'nope'"):
        get_model(reg, "nope")
    with pytest.raises(UnknownModel, match="khớp với nhiều mô hình"):
        get_model(reg, "20261101")
    assert get_model(reg, "20261101-11").id == "20261101-110000-beta"
    assert get_model(reg, "20261101-100000-alpha.tar.gz").id == "20261101-100000-alpha"


# ---------------------------------------------------------------------------- progress

# Lines of a real `bot train` run on this project (tqdm bars arrive separated by "\r").
REAL_TRAINING_OUTPUT = (
    "2026-11-27 15:45:36 INFO     rasa.cli.train  - Started validating domain and training "
    "data...\n"
    "2026-11-27 15:45:46 INFO     rasa.engine.training.hooks  - Starting to train component "
    "'MemoizationPolicy'.\n"
    "Processed rules:   0%|          | 0/23 [00:00<?, ?it/s]\r"
    "Processed rules: 100%|██████████| 23/23 [00:00<00:00, 1013.05it/s, # trackers=1]\n"
    "2026-11-27 15:45:52 INFO     rasa.engine.training.hooks  - Starting to train component "
    "'DIETClassifier'.\n"
    "\x1b[0m\rEpochs:   0%|          | 0/80 [00:00<?, ?it/s]"
    "\rEpochs:   1%|▏         | 1/80 [00:23<30:33, 23.21s/it]"
    "\rEpochs:   1%|▏         | 1/80 [00:23<30:33, 23.21s/it, t_loss=7.61, i_acc=0.497, "
    "e_f1=0.353]"
    "\rEpochs:  41%|████▏     | 33/80 [01:49<01:50,  2.36s/it, t_loss=1.83, i_acc=0.999, "
    "e_f1=0.998]"
    "\rEpochs: 100%|██████████| 80/80 [03:58<00:00,  2.98s/it, t_loss=1.27, i_acc=1, "
    "e_f1=0.999]\n"
    "2026-11-27 15:49:52 INFO     rasa.engine.training.hooks  - Finished training component "
    "'DIETClassifier'.\n"
    "2026-11-27 15:49:52 INFO     rasa.engine.training.hooks  - Starting to train component "
    "'bot.nlu.catalog_matcher.CatalogProcedureMatcher'.\n"
    "\x1b[92mYour Rasa model is trained and saved at '/srv/models/20261127-154546-threadbare-"
    "interference.tar.gz'.\x1b[0m\n"
    "Mô hình đã lưu: /srv/models/20261127-154546-threadbare-interference.tar.gz\n"
)


def test_progress_from_real_rasa_training_output() -> None:
    progress = TrainingProgress()
    seen = []
    for line in re.split(r"[\r\n]", REAL_TRAINING_OUTPUT):
        if progress.feed(line):
            seen.append((round(progress.fraction, 3), progress.phase, progress.epoch))
    fractions = [f for f, _, _ in seen]
    assert fractions == sorted(fractions), "progress never goes backwards"
    phases = [p for _, p, _ in seen]
    assert phases[0] == "Kiểm tra miền hội thoại và dữ liệu huấn luyện"
    assert "Huấn luyện MemoizationPolicy" in phases
    assert "Huấn luyện DIETClassifier: vòng 33/80" in phases
    at_33 = next(f for f, p, _ in seen if p.endswith("33/80"))
    assert at_33 == pytest.approx(0.05 + 0.9 * 33 / 80, abs=0.001)
    assert "Huấn luyện CatalogProcedureMatcher" in phases
    assert progress.fraction == 1.0 and progress.phase == "Đã lưu mô hình"
    assert progress.model_path == "/srv/models/20261127-154546-threadbare-interference.tar.gz"
    assert (progress.epoch, progress.epochs) == (80, 80)
    assert not TrainingProgress().feed("Processed story blocks: 100%|██| 2/2 [00:00<00:00]")


# ---------------------------------------------------------------------------- the lock


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_training_lock_is_single_and_taken_over_only_when_stale(reg: Settings) -> None:
    url = reg.database_url
    assert locks.acquire(url, locks.TRAINING, "job-a") is None
    with pytest.raises(locks.LockBusy) as busy:
        locks.acquire(url, locks.TRAINING, "job-b")
    assert busy.value.info.holder == "job-a"
    locks.release(url, locks.TRAINING, "job-b")  # not the holder: nothing happens
    assert locks.read_lock(url, locks.TRAINING).holder == "job-a"

    # A holder whose process is gone from this host is stale at once.
    assert locks.heartbeat(url, locks.TRAINING, "job-a", pid=dead_pid())
    replaced = locks.acquire(url, locks.TRAINING, "job-c")
    assert replaced is not None and replaced.holder == "job-a"
    assert not locks.heartbeat(url, locks.TRAINING, "job-a")  # job-a lost it

    # A live process with an old heartbeat (another host, frozen) is stale after stale_after.
    from bot.registry.models import RegistryLock

    with session_factory(url)() as s:
        row = s.get(RegistryLock, locks.TRAINING)
        row.heartbeat_at = locks.utcnow() - timedelta(seconds=600)
        row.host = "another-host"
        s.commit()
    with pytest.raises(locks.LockBusy):
        locks.acquire(url, locks.TRAINING, "job-d", stale_after=3600)
    assert locks.acquire(url, locks.TRAINING, "job-d").holder == "job-c"
    locks.release(url, locks.TRAINING, "job-d")
    assert locks.read_lock(url, locks.TRAINING) is None


def test_a_second_training_is_refused_while_one_runs(reg: Settings, capsys,
                                                     monkeypatch) -> None:
    locks.acquire(reg.database_url, locks.TRAINING, "running-job")
    with pytest.raises(TrainingBusy, match="mỗi lần chỉ huấn luyện một mô hình"):
        start_training(reg, "op1")
    with pytest.raises(TrainingBusy):
        train_model(reg, "op2")
    with session_factory(reg.database_url)() as s:
        assert s.query(TrainingJob).count() == 0  # nothing was started

    from bot.cli import main

    for key, value in (("DATABASE_URL", reg.database_url), ("MODELS_DIR", str(reg.models_dir))):
        monkeypatch.setenv(key, value)
    assert main(["model", "train", "--by", "op3"]) == 1
    err = capsys.readouterr().err
    assert "Đang có một lượt huấn luyện khác (running-job" in err and "Traceback" not in err


def test_a_job_whose_process_died_is_reported_failed_and_frees_the_lock(reg: Settings) -> None:
    pid = dead_pid()
    locks.acquire(reg.database_url, locks.TRAINING, "crashed", pid=pid)
    now = locks.utcnow()
    with session_factory(reg.database_url)() as s:
        s.add(TrainingJob(id="crashed", status=RUNNING, requested_by="op", config_path="x",
                          created_at=now - timedelta(minutes=3), updated_at=now, pid=pid,
                          host=socket.gethostname(), percent=42.0, phase="Huấn luyện"))
        s.commit()
    assert current_job(reg) is None
    job = get_job(reg, "crashed")
    assert job.status == "failed" and "dừng bất thường" in job.error
    assert locks.read_lock(reg.database_url, locks.TRAINING) is None
    with pytest.raises(RegistryError, match="Không có lượt huấn luyện"):
        get_job(reg, "nope")


# ---------------------------------------------------------------------------- the gate


def test_gate_arithmetic_margin_and_what_changed() -> None:
    base = metrics(0.90, 0.90, {"greet": 0.9, "ask_fee": 0.8, "deny": 0.7}, "sha")
    within = metrics(0.895, 0.892, {"greet": 0.95, "ask_fee": 0.7, "deny": 0.705}, "sha")
    verdict = compare(within, base, margin=0.01, baseline_id="old")
    assert verdict["passed"] and verdict["reasons"] == []
    assert [i["intent"] for i in verdict["better"]] == ["greet"]
    assert [i["intent"] for i in verdict["worse"]] == ["ask_fee"]  # deny's +0.005 is noise
    assert verdict["worse"][0]["delta"] == pytest.approx(-0.1)

    worse = metrics(0.87, 0.88, {"greet": 0.9, "ask_fee": 0.8, "deny": 0.7}, "sha")
    verdict = compare(worse, base, margin=0.01, baseline_id="old")
    assert not verdict["passed"]
    assert len(verdict["reasons"]) == 2
    assert "F1 có trọng số 0.880 thấp hơn" in verdict["reasons"][0]
    assert "Độ chính xác 0.870 thấp hơn" in verdict["reasons"][1]
    assert compare(worse, base, margin=0.05)["passed"]  # a wider margin lets it through

    assert compare(worse, None, margin=0.0)["passed"]  # the first model has nothing to beat
    other_file = metrics(0.99, 0.99, {"greet": 1.0}, "other-sha")
    assert not compare(other_file, base, margin=0.01)["passed"]

    cv_base = {"accuracy": 0.9, "weighted_f1": 0.9, "folds": 3}
    cv_bad = {"accuracy": 0.7, "weighted_f1": 0.7, "folds": 3}
    verdict = compare(within, base, 0.01, "old", candidate_cv=cv_bad, baseline_cv=cv_base)
    assert not verdict["passed"] and verdict["reasons"][0].startswith("Kiểm định chéo: ")
    assert compare(within, base, 0.01, candidate_cv=cv_bad,
                   baseline_cv={**cv_base, "folds": 5})["passed"]  # not comparable: ignored

    better, worse_list = intent_changes({"intents": {"new": {"f1": 0.5}}},
                                        {"intents": {"gone": {"f1": 0.5}}})
    assert better[0]["intent"] == "new" and worse_list[0]["intent"] == "gone"


def test_read_intent_report_in_rasa_format(tmp_path: Path) -> None:
    # The shape Rasa 3.6 writes (scikit-learn's report + confused_with), abridged.
    (tmp_path / "intent_report.json").write_text(json.dumps({
        "greet": {"precision": 1.0, "recall": 0.5, "f1-score": 0.6667, "support": 4,
                  "confused_with": {"goodbye": 2}},
        "goodbye": {"precision": 0.6667, "recall": 1.0, "f1-score": 0.8, "support": 4,
                    "confused_with": {}},
        "micro avg": {"precision": 0.75, "recall": 0.75, "f1-score": 0.75, "support": 8},
        "macro avg": {"precision": 0.83, "recall": 0.75, "f1-score": 0.7333, "support": 8},
        "weighted avg": {"precision": 0.83, "recall": 0.75, "f1-score": 0.7333, "support": 8},
    }))
    (tmp_path / "intent_errors.json").write_text(json.dumps([
        {"text": "chào nhé", "intent": "greet",
         "intent_prediction": {"name": "goodbye", "confidence": 0.61234}}]))
    report = read_intent_report(tmp_path)
    assert report["accuracy"] == 0.75  # from "micro avg" when there is no "accuracy"
    assert report["weighted_f1"] == 0.7333 and report["support"] == 8
    assert set(report["intents"]) == {"greet", "goodbye"}
    assert report["intents"]["greet"]["confused_with"] == {"goodbye": 2}
    assert report["errors"] == [{"text": "chào nhé", "intent": "greet", "predicted": "goodbye",
                                 "confidence": 0.6123}]
    assert report["confusion_matrix"] is None


# ---------------------------------------------------------------------------- activation


def test_offline_activation_gate_force_and_rollback(reg: Settings) -> None:
    sha = file_sha256(TEST_FILE)
    fake_model(reg.models_dir, "20261101-100000-serving", "s1", age=600)
    sync(reg)
    worse = fake_model(reg.models_dir, "20261102-100000-worse", "w1", age=0)
    register_trained(reg, worse, "tester")

    with pytest.raises(GateRefused, match="chưa được đánh giá"):
        activate("20261102-100000-worse", reg, by="op")
    store_metrics(reg, "20261102-100000-worse",
                  metrics(0.5, 0.5, {"greet": 0.4, "ask_fee": 0.6}, sha))
    with pytest.raises(GateRefused, match="Mô hình đang dùng 20261101-100000-serving chưa"):
        activate("20261102-100000-worse", reg, by="op")
    store_metrics(reg, "20261101-100000-serving",
                  metrics(0.9, 0.9, {"greet": 0.9, "ask_fee": 0.9}, sha))
    with pytest.raises(GateRefused) as refused:
        activate("20261102-100000-worse", reg, by="op")
    assert not refused.value.gate["passed"]
    assert {i["intent"] for i in refused.value.gate["worse"]} == {"greet", "ask_fee"}
    assert active_model(reg).name == "20261101-100000-serving.tar.gz"
    assert get_model(reg, "20261102-100000-worse").gate["passed"] is False  # persisted

    forced = activate("20261102-100000-worse", reg, by="op", force=True)
    assert forced.kind == "force" and forced.previous_id == "20261101-100000-serving"
    assert [s.outcome for s in forced.servers] == ["unreachable"]
    assert "lần khởi động sau" in forced.warnings[0]
    assert active_model(reg).name == "20261102-100000-worse.tar.gz"
    assert get_model(reg, "20261101-100000-serving").status == "retired"

    back = rollback(reg, by="op2")
    assert back.kind == "rollback" and back.model.id == "20261101-100000-serving"
    assert active_model(reg).name == "20261101-100000-serving.tar.gz"
    history = activation_history(reg)
    assert [(h.kind, h.model_id, h.by) for h in history] == [
        ("rollback", "20261101-100000-serving", "op2"),
        ("force", "20261102-100000-worse", "op")]
    assert history[1].gate_passed is False


def test_gate_for_the_serving_model_itself_passes(reg: Settings) -> None:
    fake_model(reg.models_dir, "20261101-100000-only", "o1")
    sync(reg)
    with session_factory(reg.database_url)() as s:
        gate = gate_for(s, reg, s.get(ModelVersion, "20261101-100000-only"))
    assert gate["passed"] and gate["summary"] == ["Đây là mô hình đang dùng."]
    result = activate("20261101-100000-only", reg, by="op")  # pins it, no evaluation needed
    assert result.model.status == "active"


def test_rollback_without_history_and_missing_files_are_refused(reg: Settings) -> None:
    with pytest.raises(RegistryError, match="Chưa có mô hình nào đang dùng"):
        rollback(reg, by="op")
    gone = fake_model(reg.models_dir, "20261101-100000-gone", "g1")
    sync(reg)
    with pytest.raises(RegistryError, match="chưa thay thế mô hình nào"):
        rollback(reg, by="op")
    gone.unlink()
    with pytest.raises(RegistryError, match="Thiếu tệp mô hình"):
        activate("20261101-100000-gone", reg, by="op", force=True)


# ---------------------------------------------------------------------------- CLI


def test_cli_list_json_and_operator_errors(reg: Settings, capsys, monkeypatch) -> None:
    from bot.cli import main

    for key, value in (("DATABASE_URL", reg.database_url), ("MODELS_DIR", str(reg.models_dir)),
                       ("RASA_URLS", reg.rasa_urls[0])):
        monkeypatch.setenv(key, value)
    fake_model(reg.models_dir, "20261101-100000-one", "m1", age=100)
    fake_model(reg.models_dir, "20261102-100000-two", "m2", age=0)

    assert main(["model", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["active"] == "20261102-100000-two" and listed["training"] is None
    assert [m["id"] for m in listed["models"]] == ["20261102-100000-two", "20261101-100000-one"]
    assert listed["models"][0]["trained_by"] == "unknown"
    assert listed["models"][0]["created_at"].endswith("Z")

    assert main(["model", "list"]) == 0
    table = capsys.readouterr().out
    assert "* 20261102-100000-two" in table and "  20261101-100000-one" in table

    cases = [
        (["model", "show", "nope"], 2, "Lỗi: Không có mô hình 'nope'"),
        (["model", "evaluate", "nope"], 2, "Không có mô hình 'nope'"),
        (["model", "activate", "2026110"], 2, "khớp với nhiều mô hình"),
        (["model", "activate", "20261101-100000-one"], 1, "chưa được đánh giá"),
        (["model", "rollback"], 2, "không có mô hình trước đó"),
        (["model", "train", "--config", "/nonexistent.yml"], 2, "Không có tệp cấu hình"),
        (["model", "evaluate", "20261101", "--folds", "1"], 2, "--folds phải từ 2"),
        (["model", "job", "nope"], 2, "Không có lượt huấn luyện 'nope'"),
    ]
    for argv, code, message in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert "Traceback" not in err

    assert main(["model", "activate", "20261101-100000-one", "--force", "--by", "ops"]) == 0
    out = capsys.readouterr().out
    assert "Đang dùng: 20261101-100000-one (thay 20261102-100000-two)" in out
    assert get_model(reg, "active").activated_by == "ops"


# ---------------------------------------------------------------------------- test file


def _examples(path: Path) -> list[tuple[str, str]]:
    out = []
    for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
        if "intent" not in item:
            continue
        for line in (item.get("examples") or "").splitlines():
            if line.strip().startswith("- "):
                text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line.strip()[2:])
                out.append((item["intent"], text))
    return out


def _key(text: str) -> str:
    return " ".join(strip_accents(nfc(text)).lower().split())


def test_held_out_test_file_covers_every_intent_and_is_not_training_data() -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    examples = _examples(TEST_FILE)
    loaded = load_data(str(TEST_FILE))  # Rasa reads it as NLU data
    assert len(loaded.intent_examples) == len(examples) >= 150
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for intent, _ in examples:
        counts[intent] = counts.get(intent, 0) + 1
    missing = {i: counts.get(i, 0) for i in domain["intents"] if counts.get(i, 0) < 6}
    assert not missing, f"every intent needs 6+ test messages: {missing}"
    assert set(counts) <= set(domain["intents"])
    no_marks = sum(1 for _, t in examples if strip_accents(t) == t)
    assert no_marks >= len(examples) // 5, "a fair share typed without diacritics"

    seen = {_key(t) for p in (ROOT / "data" / "nlu").glob("*.yml") for _, t in _examples(p)}
    dev = SHARED / "eval" / "citizen_dev.jsonl"
    if dev.exists():
        seen |= {_key(json.loads(line)["text"]) for line in dev.read_text().splitlines()
                 if line.strip()}
    copied = [t for _, t in examples if _key(t) in seen]
    assert not copied, f"test messages that are training / dev messages: {copied}"
    assert len({_key(t) for _, t in examples}) == len(examples), "duplicates in the test file"


def test_training_never_reads_the_test_file() -> None:
    """`rasa train --data data …` must not pick up tests/nlu_test.yml as training data."""
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_dict(
        config_path=str(ROOT / "config.yml"), domain_path=str(ROOT / "domain.yml"),
        training_data_paths=[str(ROOT / "data")])
    trained_on = {_key(m.get("text")) for m in importer.get_nlu_data().intent_examples}
    assert len(trained_on) > 500
    assert not trained_on & {_key(t) for _, t in _examples(TEST_FILE)}


# ---------------------------------------------------------------------------- queue mode


def test_training_mode_setting() -> None:
    assert Settings.from_env({}).training_mode == "inline"  # `bot run`: one machine
    assert Settings.from_env({"TRAINING_MODE": " Queue "}).training_mode == "queue"
    with pytest.raises(SystemExit, match="TRAINING_MODE"):
        Settings.from_env({"TRAINING_MODE": "gpu"})


def test_queue_mode_requests_and_the_trainer_service_trains(
        reg: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed: a training started in the console ran in the gateway's container (a child
    process of the gateway, under its 1 GiB limit); in queue mode the gateway only writes
    the request and the trainer service runs it."""
    from bot.registry import trainer, training_job

    gateway = dataclasses.replace(reg, training_mode="queue")
    spawned: list[object] = []
    with monkeypatch.context() as m:
        m.setattr(training_job.subprocess, "Popen",
                  lambda *a, **k: spawned.append(a) or pytest.fail("spawned"))
        job_id = start_training(gateway, "lan", evaluate=False)
    assert spawned == []
    job = get_job(gateway, job_id)
    assert (job.status, job.background, job.pid) == ("queued", True, None)
    assert "chờ máy huấn luyện" in job.phase and current_job(gateway).id == job_id
    with pytest.raises(TrainingBusy, match="đang chờ"):
        start_training(gateway, "minh")

    # A training holding the lock (a terminal's `bot model train`): the trainer waits.
    locks.acquire(reg.database_url, locks.TRAINING, "terminal-job")
    assert trainer.run_trainer(reg, once=True) == 0 and get_job(reg, job_id).status == "queued"
    locks.release(reg.database_url, locks.TRAINING, "terminal-job")

    def fake_train(settings: Settings, job: TrainingJob, log_file: object,
                   report: object) -> Path:
        assert job.id == job_id and settings.models_dir == reg.models_dir
        return fake_model(settings.models_dir, "20261201-000000-queued", "q1")

    monkeypatch.setattr(training_job, "_train_child", fake_train)
    assert trainer.run_trainer(reg, once=True) == 1  # the trainer's own process
    job = get_job(gateway, job_id)
    assert job.status == "succeeded" and job.model_id == "20261201-000000-queued"
    assert job.host == socket.gethostname() and job.pid == os.getpid()
    assert locks.read_lock(reg.database_url, locks.TRAINING) is None
    assert get_model(reg, job.model_id).job_id == job_id
    assert current_job(gateway) is None


def test_queue_mode_cancel_waiting_and_running(reg: Settings) -> None:
    from bot.registry import trainer, training_job

    gateway = dataclasses.replace(reg, training_mode="queue")
    waiting = start_training(gateway, "lan", evaluate=False)
    job = training_job.cancel_training(gateway, waiting, "minh")
    assert job.status == "cancelled" and "minh" in job.error
    assert trainer.run_trainer(reg, once=True) == 0  # nothing left to claim
    # A running one is in another container: the request goes through its row.
    running = start_training(gateway, "lan", evaluate=False)
    assert training_job.claim_next(reg) == running
    job = training_job.cancel_training(gateway, running, "minh", wait=0.2)
    assert job.status == "running"  # until the trainer's watcher stops it
    assert training_job.cancel_requested(reg, running) == "minh"
    locks.release(reg.database_url, locks.TRAINING, running)


def test_trainer_liveness_file(tmp_path: Path) -> None:
    from bot.registry import trainer

    path = tmp_path / "alive"
    assert not trainer.alive(path)
    path.touch()
    assert trainer.alive(path)
    old = time.time() - 2 * trainer.ALIVE_WITHIN
    os.utime(path, (old, old))
    assert not trainer.alive(path)
