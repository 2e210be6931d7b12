"""Operator corrections as Rasa training data (bot/console/corrections.py): stored in the
database, exported to the corrections file, added to the training data.

Every test writes into a copy of data/nlu/ and checks the result with Rasa's own reader;
`rasa data validate` on a data folder holding corrections runs in test_console_inbox.py.
"""

from __future__ import annotations

import multiprocessing
import shutil
import threading
import unicodedata
from pathlib import Path

import pytest
import yaml

from bot.catalog.db import session_scope
from bot.config import ROOT, Settings
from bot.console.corrections import (
    HEADER,
    CorrectionError,
    DuplicateExample,
    EntitySpan,
    add_example,
    export_corrections,
    pending_document,
    prepare,
    store_example,
    stored_corrections,
)
from bot.console.inbox_models import NluCorrection


@pytest.fixture()
def nlu(tmp_path: Path) -> Path:
    """A copy of the shipped NLU folder (with its empty corrections file)."""
    shutil.copytree(ROOT / "data" / "nlu", tmp_path / "nlu")
    return tmp_path / "nlu"


def load(path: Path) -> dict[str, tuple[str, list[tuple[int, int, str, str]]]]:
    """{text: (intent, entities)} as Rasa's YAML reader sees the file."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().read(path)
    return {m.get("text"): (m.get("intent"), [(e["start"], e["end"], e["entity"], e["value"])
                                              for e in m.get("entities") or []])
            for m in data.training_examples}


def test_shipped_file_is_empty_and_valid() -> None:
    path = Settings.from_env({}).nlu_corrections_file
    assert path == ROOT / "data" / "nlu" / "corrections.yml"
    content = path.read_text(encoding="utf-8")
    assert content == HEADER + 'version: "3.1"\nnlu: []\n'
    assert load(path) == {}
    assert Settings.from_env({"NLU_CORRECTIONS_FILE": "x/y.yml"}).nlu_corrections_file == (
        ROOT / "x" / "y.yml")


def test_example_with_entity_round_trips(nlu: Path) -> None:
    text = "làm lại căn cước hết bao nhiêu tiền vậy ạ"
    added = add_example(text, "ask_fee", [EntitySpan(0, 16, "procedure")],
                        corrections_file=nlu / "corrections.yml")
    assert added.example == "[làm lại căn cước](procedure) hết bao nhiêu tiền vậy ạ"
    assert load(nlu / "corrections.yml") == {
        text: ("ask_fee", [(0, 16, "procedure", "làm lại căn cước")])}


def test_citizen_text_is_made_safe(nlu: Path) -> None:
    """Brackets (Rasa markup), line breaks, odd spaces, NFD and control characters."""
    raw = unicodedata.normalize("NFD", "  [gấp] cấp lại  (mất) hộ\u2028chiếu\tở đâu?\x07 ")
    nfc_raw = unicodedata.normalize("NFC", raw)
    start = nfc_raw.index("hộ")
    spans = [EntitySpan(start - 1, nfc_raw.index("ở") + 0, "procedure")]  # spaces trimmed
    added = add_example(nfc_raw, "ask_where", spans, corrections_file=nlu / "corrections.yml")
    plain = "(gấp) cấp lại (mất) hộ chiếu ở đâu?"
    assert added.text == plain
    assert load(nlu / "corrections.yml") == {
        plain: ("ask_where", [(20, 28, "procedure", "hộ chiếu")])}
    # "[x](y)" typed by a citizen never becomes an entity
    added = add_example("xem [mẫu](tờ khai) ở đâu", "ask_where",
                        corrections_file=nlu / "corrections.yml")
    assert load(nlu / "corrections.yml")[added.text] == ("ask_where", [])


def test_value_and_two_entities(nlu: Path) -> None:
    text = "hồ sơ 000.00.21.H26-241120-0001 sang tên sổ đỏ xong chưa"
    with pytest.raises(CorrectionError, match="mã hồ sơ"):  # personal data stays out of git
        prepare(text, "check_status")
    text = "phí sang tên sổ đỏ và đăng ký kết hôn"
    spans = [EntitySpan(text.index("đăng"), len(text), "procedure", "1.000894"),
             EntitySpan(4, 18, "procedure")]  # given out of order
    added = add_example(text, "ask_fee", spans, corrections_file=nlu / "corrections.yml")
    assert '{"entity": "procedure", "value": "1.000894"}' in added.example
    assert load(nlu / "corrections.yml")[text] == ("ask_fee", [
        (4, 18, "procedure", "sang tên sổ đỏ"), (22, 37, "procedure", "1.000894")])


@pytest.mark.parametrize(("text", "intent", "spans", "message"), [
    ("phí bao nhiêu", "ask_price", [], "Ý định 'ask_price'"),
    ("phí bao nhiêu", "nlu_fallback", [], "không có trong domain"),
    ("phí làm hộ chiếu", "ask_fee", [EntitySpan(4, 16, "document")], "Thực thể 'document'"),
    ("phí làm hộ chiếu", "ask_fee", [EntitySpan(4, 17, "procedure")], "ngoài câu"),
    ("phí làm hộ chiếu", "ask_fee", [EntitySpan(-1, 3, "procedure")], "ngoài câu"),
    ("phí làm hộ chiếu", "ask_fee",
     [EntitySpan(4, 11, "procedure"), EntitySpan(8, 16, "procedure")], "chồng lên nhau"),
    ("phí làm hộ chiếu", "ask_fee", [EntitySpan(3, 4, "procedure")], "khoảng trắng"),
    ("phí làm hộ chiếu", "ask_fee", [EntitySpan(4, 16, "procedure", "a}b")], "ngoặc nhọn"),
    ("gọi cho tôi 0912345678", "request_human", [], "số điện thoại"),
    ("cccd 001099012345 làm lại", "ask_procedure", [], "CCCD"),
    ('/ask_fee{"procedure": "1.0"}', "ask_fee", [], "nút bấm"),
    (" \n\t ", "greet", [], "trống"),
    ("thời tiết", "out_of_scope", [EntitySpan(0, 3, "procedure")], "ngoài phạm vi"),
])
def test_refused(nlu: Path, text: str, intent: str, spans: list[EntitySpan],
                 message: str) -> None:
    before = (nlu / "corrections.yml").read_bytes()
    with pytest.raises(CorrectionError, match=message):
        add_example(text, intent, spans, corrections_file=nlu / "corrections.yml")
    assert (nlu / "corrections.yml").read_bytes() == before


def test_duplicates_in_any_file_are_refused(nlu: Path) -> None:
    corrections = nlu / "corrections.yml"
    with pytest.raises(DuplicateExample, match="out_of_scope.yml") as refused:
        add_example("Hôm nay  thời tiết thế nào", "ask_fee", corrections_file=corrections)
    assert refused.value.intent == "out_of_scope"
    # an annotated example of procedures.yml, typed without the markup
    with pytest.raises(DuplicateExample, match="procedures.yml"):
        add_example("làm giấy khai sinh cho con thế nào ạ", "ask_procedure",
                    corrections_file=corrections)
    add_example("tôi muốn mua vé máy bay", "out_of_scope", corrections_file=corrections)
    with pytest.raises(DuplicateExample, match="corrections.yml"):
        add_example("Tôi muốn mua vé máy bay", "out_of_scope", corrections_file=corrections)


def test_file_is_sorted_and_deterministic(tmp_path: Path) -> None:
    examples = [("chào em nhé trợ lý ơi", "greet"), ("mua vé tàu ở đâu", "out_of_scope"),
                ("ảnh thẻ cần mấy tấm", "ask_documents"), ("bán xe máy cũ", "out_of_scope")]
    files = []
    for name, order in (("a", examples), ("b", list(reversed(examples)))):
        folder = tmp_path / name / "nlu"
        shutil.copytree(ROOT / "data" / "nlu", folder)
        for text, intent in order:
            add_example(text, intent, corrections_file=folder / "corrections.yml")
        files.append((folder / "corrections.yml").read_text(encoding="utf-8"))
    assert files[0] == files[1]
    data = yaml.safe_load(files[0])
    assert [b["intent"] for b in data["nlu"]] == ["ask_documents", "greet", "out_of_scope"]
    assert data["nlu"][2]["examples"] == "- bán xe máy cũ\n- mua vé tàu ở đâu\n"
    assert files[0].startswith(HEADER)


def test_concurrent_threads_lose_nothing(nlu: Path) -> None:
    corrections = nlu / "corrections.yml"
    errors: list[Exception] = []

    def add(i: int) -> None:
        try:
            add_example(f"câu thử số {i} về phở bò", "out_of_scope",
                        corrections_file=corrections)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(load(corrections)) == 12
    assert not [p for p in nlu.iterdir() if p.name.endswith(".tmp")]


def _add_in_process(args: tuple[str, int]) -> str:
    folder, i = args
    added = add_example(f"tiến trình {i} hỏi chuyện bóng đá", "out_of_scope",
                        corrections_file=Path(folder) / "corrections.yml")
    return added.text


def test_concurrent_processes_lose_nothing(nlu: Path) -> None:
    """Two gateways (or a gateway and a CLI) on one checkout: the folder lock holds."""
    with multiprocessing.get_context("fork").Pool(4) as pool:
        texts = pool.map(_add_in_process, [(str(nlu), i) for i in range(8)])
    assert set(load(nlu / "corrections.yml")) == set(texts)


# --------------------------------------------------------------------------- database

SHOW_TICKET = "trợ lý ơi cho hỏi mua vé xem bóng đá ở đâu"  # in no file of data/nlu


def test_a_stored_correction_is_seen_by_every_replica_and_exported(
        nlu: Path, tmp_path: Path) -> None:
    """Fixed: the console wrote the correction into one container's data/nlu: another
    gateway replica neither saw nor refused it, and a redeploy lost it."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    corrections = nlu / "corrections.yml"
    before = corrections.read_bytes()
    with session_scope(url) as s:  # replica A
        added = store_example(s, SHOW_TICKET, "out_of_scope", corrections_file=corrections,
                              by="lan")
    assert added.example == SHOW_TICKET and corrections.read_bytes() == before
    with session_scope(url) as s:  # replica B, with its own untouched files
        with pytest.raises(DuplicateExample, match="lan") as refused:
            store_example(s, SHOW_TICKET.upper(), "ask_where",
                          corrections_file=ROOT / "data" / "nlu" / "corrections.yml", by="an")
        assert refused.value.intent == "out_of_scope"
        with pytest.raises(DuplicateExample, match="out_of_scope.yml"):  # the files still count
            store_example(s, "Hôm nay thời tiết thế nào", "ask_fee",
                          corrections_file=corrections, by="an")
        with pytest.raises(CorrectionError, match="số điện thoại"):
            store_example(s, "gọi cho tôi 0912345678", "request_human",
                          corrections_file=corrections, by="an")
        assert [r.text for r in stored_corrections(s)] == [SHOW_TICKET]
    with session_scope(url) as s:  # `bot nlu export-corrections`: the file reviewers commit
        assert export_corrections(s, corrections) == 1
        assert export_corrections(s, corrections) == 0  # once only
        assert pending_document(s, nlu) is None  # exported: training takes it from the file
    assert load(corrections) == {SHOW_TICKET: ("out_of_scope", [])}


def test_training_includes_the_stored_corrections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed: `bot train` read data/ only, so a correction made on another replica (or
    before a redeploy) never reached a model."""
    import bot.nlu.lexicon
    import bot.training

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    with session_scope(url) as s:
        store_example(s, SHOW_TICKET, "out_of_scope", by="lan",
                      corrections_file=ROOT / "data" / "nlu" / "corrections.yml")
    out = tmp_path / "train_data"
    models = tmp_path / "models"
    commands: list[list[str]] = []

    def fake_rasa(cmd: list[str], **_: object) -> None:
        commands.append(cmd)
        (models / "20260101-000000-test.tar.gz").write_bytes(b"model")

    monkeypatch.setattr(bot.training, "AUGMENTED_DIR", out)
    monkeypatch.setattr(bot.training.subprocess, "run", fake_rasa)
    monkeypatch.setattr(bot.training, "catalog_fingerprint", lambda _url: "catalog")
    monkeypatch.setattr(bot.nlu.lexicon, "write_lexicon", lambda: None)
    bot.training.train(Settings(database_url=url, models_dir=models))
    (cmd,) = commands
    data = cmd[cmd.index("--data") + 1:cmd.index("--out")]
    assert data == [str(ROOT / "data"), str(out)]
    assert load(out / bot.training.STORED_CORRECTIONS) == {SHOW_TICKET: ("out_of_scope", [])}
    accent_free = yaml.safe_load((out / bot.training.ACCENT_FREE).read_text(encoding="utf-8"))
    copies = [e for b in accent_free["nlu"] if b["intent"] == "out_of_scope"
              for e in b["examples"].splitlines()]
    assert "- tro ly oi cho hoi mua ve xem bong da o dau" in copies
    # Without stored corrections no stale file stays behind.
    with session_scope(url) as s:
        s.query(NluCorrection).delete()
    bot.training.train(Settings(database_url=url, models_dir=models), augment=False)
    assert not (out / bot.training.STORED_CORRECTIONS).exists()
    assert commands[1][commands[1].index("--data") + 1:commands[1].index("--out")] == [
        str(ROOT / "data")]
