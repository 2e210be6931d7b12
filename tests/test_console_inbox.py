"""The NLU inbox on real conversations: what lands in it, suggestions, corrections.

Messages go through the console's shared stack (tests.test_console_conversations); the
corrections are stored in the database, then exported into a copy of data/ that Rasa's
reader and `rasa data validate` check, so the checkout's training data is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.catalog.db import session_scope
from bot.console.conversations import read_conversation
from bot.console.corrections import DuplicateExample, EntitySpan, export_corrections
from bot.console.inbox import (
    REASON_FALLBACK,
    REASON_LOW_CONFIDENCE,
    REASON_THUMBS_DOWN,
    InboxError,
    InboxItem,
    correct,
    get_item,
    ignore,
    inbox,
    mark_out_of_scope,
    suggest,
)
from bot.console.inbox_models import NluReview
from tests.conftest import ROOT
from tests.test_console_conversations import FEE_QUESTION, NONSENSE, chat, console_stack, rate

pytestmark = pytest.mark.integration

WEB = "inbox-web-0001"
WIDGET = "inbox-widget-0001"
PASSPORT_KID = "cho mình hỏi làm hộ chiếu cho bé cần mang gì"  # not in the training data
WEATHER = "hôm nay thời tiết thế nào"  # already an out_of_scope example
OPERATOR = "Nguyễn Thị Lan"


@dataclass
class Made:
    url: str
    data: Path  # a copy of data/
    answer: str  # the bot's answer that got the thumbs down

    @property
    def corrections(self) -> Path:
        return self.data / "nlu" / "corrections.yml"


def mine(url: str, threshold: float | None = None) -> dict[str, InboxItem]:
    """This module's inbox items by text (the shared database holds other modules' too)."""
    with session_scope(url) as s:
        items, total = inbox(s, limit=10_000, threshold=threshold)
    assert total == len(items)
    return {i.text: i for i in items if i.sender_id in (WEB, WIDGET)}


def event_id(url: str, sender: str, text: str) -> int:
    with session_scope(url) as s:
        return next(t.event_id for t in read_conversation(s, sender) if t.text == text)


@pytest.fixture(scope="module")
def made(trained, request: pytest.FixtureRequest,  # noqa: ANN001
         tmp_path_factory: pytest.TempPathFactory) -> Made:
    st, url = console_stack(trained, request, tmp_path_factory)
    chat(st, WEB, NONSENSE)  # the NLU falls back
    chat(st, WEB, FEE_QUESTION)  # understood with confidence
    chat(st, WEB, WEATHER)
    answer = chat(st, WIDGET, PASSPORT_KID, channel="widget")
    rate(st, WIDGET, "down", answer)
    data = tmp_path_factory.mktemp("inbox") / "data"
    shutil.copytree(ROOT / "data", data)
    return Made(url, data, answer)


@pytest.fixture(scope="module")
def corrected(made: Made) -> dict[str, NluReview]:
    """The common case, one click each: accept the suggestion for the thumbs-down message
    (marking "hộ chiếu" when the NLU found no entity), "out of scope" for the nonsense."""
    items = mine(made.url, threshold=0.0)
    passport, nonsense = items[PASSPORT_KID], items[NONSENSE]
    suggestion = suggest(passport)
    start = PASSPORT_KID.index("hộ chiếu")
    spans = suggestion.entities or [EntitySpan(start, start + len("hộ chiếu"), "procedure")]
    with session_scope(made.url) as s:
        fixed = correct(s, passport.id, suggestion.intent, spans, OPERATOR,
                        corrections_file=made.corrections)
        oos = mark_out_of_scope(s, nonsense.id, OPERATOR, corrections_file=made.corrections)
    assert "intent" not in made.corrections.read_text(encoding="utf-8")  # stored, not written
    with session_scope(made.url) as s:  # what `bot nlu export-corrections` does
        assert export_corrections(s, made.corrections) == 2
    return {"passport": fixed, "nonsense": oos}


def test_fallback_and_thumbs_down_are_in_the_inbox(made: Made) -> None:
    items = mine(made.url, threshold=0.0)  # no low-confidence items: only the two others
    assert set(items) == {NONSENSE, PASSPORT_KID}
    nonsense, passport = items[NONSENSE], items[PASSPORT_KID]
    assert nonsense.reasons == (REASON_FALLBACK,) and nonsense.channel == "web"
    assert nonsense.intent == "nlu_fallback" and nonsense.answer.startswith("Xin lỗi")
    assert REASON_THUMBS_DOWN in passport.reasons and passport.channel == "widget"
    assert passport.answer == made.answer and passport.at is not None


def test_low_confidence_threshold(made: Made, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = mine(made.url, threshold=1.01)  # every typed message is "unsure" now
    assert {FEE_QUESTION, WEATHER} <= set(everything)
    assert everything[FEE_QUESTION].reasons == (REASON_LOW_CONFIDENCE,)
    monkeypatch.setenv("INBOX_CONFIDENCE", "0")  # the setting is the default threshold
    assert set(mine(made.url)) == set(mine(made.url, threshold=0.0))


def test_suggestion_is_the_nlus_own_reading(made: Made) -> None:
    passport = mine(made.url, threshold=0.0)[PASSPORT_KID]
    suggestion = suggest(passport)
    assert suggestion.intent == passport.intent != "nlu_fallback"
    assert suggestion.top[0][0] == suggestion.intent and 1 <= len(suggestion.top) <= 3
    nonsense = suggest(mine(made.url, threshold=0.0)[NONSENSE])
    assert nonsense.intent not in (None, "nlu_fallback")  # the classifier's real guess
    assert all(name != "nlu_fallback" for name, _ in nonsense.top) and len(nonsense.top) == 3


def test_corrections_leave_the_inbox_and_reach_the_training_data(
        made: Made, corrected: dict[str, NluReview]) -> None:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    fixed, oos = corrected["passport"], corrected["nonsense"]
    assert (fixed.status, fixed.reviewed_by, oos.status) == ("corrected", OPERATOR,
                                                            "out_of_scope")
    assert not {PASSPORT_KID, NONSENSE} & set(mine(made.url, threshold=0.0))
    data = RasaYAMLReader().read(made.corrections)
    examples = {m.get("text"): m for m in data.training_examples}
    assert examples[NONSENSE].get("intent") == "out_of_scope"
    passport = examples[PASSPORT_KID]
    assert passport.get("intent") == fixed.intent
    entities = [(e["start"], e["end"], e["entity"]) for e in passport.get("entities")]
    assert entities and all(e[2] == "procedure" for e in entities)
    assert PASSPORT_KID[entities[0][0]:entities[0][1]] in fixed.example
    raw = yaml.safe_load(made.corrections.read_text(encoding="utf-8"))
    assert [b["intent"] for b in raw["nlu"]] == sorted([fixed.intent, "out_of_scope"])
    with session_scope(made.url) as s:  # a second decision on the same message is refused
        with pytest.raises(InboxError, match=OPERATOR):
            ignore(s, fixed.event_id, "Trần Văn B")


def test_duplicates_are_refused(made: Made, corrected: dict[str, NluReview]) -> None:
    before = made.corrections.read_text(encoding="utf-8")
    weather = event_id(made.url, WEB, WEATHER)
    with session_scope(made.url) as s:
        with pytest.raises(DuplicateExample, match="out_of_scope.yml") as refused:
            correct(s, weather, "ask_fee", [], OPERATOR, corrections_file=made.corrections)
        assert refused.value.intent == "out_of_scope"
        # already an out-of-scope example: the decision is recorded, nothing is added
        review = mark_out_of_scope(s, weather, OPERATOR, corrections_file=made.corrections)
        assert review.status == "out_of_scope" and review.example is None
    assert made.corrections.read_text(encoding="utf-8") == before


def test_ignore_and_unknown_items(made: Made) -> None:
    fee = event_id(made.url, WEB, FEE_QUESTION)
    with session_scope(made.url) as s:
        item = get_item(s, fee, threshold=0.6)
        assert item.text == FEE_QUESTION and item.reasons == ()
        with pytest.raises(InboxError, match="cán bộ"):
            ignore(s, fee, " ")  # a decision always has a name
        assert ignore(s, fee, OPERATOR).status == "ignored"
        with pytest.raises(InboxError):
            get_item(s, 10**9)
    assert FEE_QUESTION not in mine(made.url, threshold=1.01)


def test_rasa_data_validate_accepts_the_corrected_data(made: Made,
                                                       corrected: dict[str, NluReview]) -> None:
    assert "- intent: out_of_scope" in made.corrections.read_text(encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "rasa", "data", "validate", "--domain",
                          "domain.yml", "--data", str(made.data), "--config", "config.yml",
                          "--fail-on-warnings"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
