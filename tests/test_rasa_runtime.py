"""bot/rasa_runtime.py: Rasa's server with its two measured hot paths fixed — the behaviour
must be exactly Rasa's (same validation verdicts and errors, same predictions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError

from bot.config import ROOT


def _texts(limit: int = 60) -> list[str]:
    data = yaml.safe_load((ROOT / "tests" / "nlu_test.yml").read_text(encoding="utf-8"))
    texts = [line.strip()[2:] for item in data["nlu"]
             for line in item["examples"].splitlines() if line.strip().startswith("- ")]
    return texts[::max(1, len(texts) // limit)]


def test_action_replies_are_still_validated_with_rasas_error() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig

    from bot import rasa_runtime

    rasa_runtime.apply()
    rasa_runtime.apply()  # idempotent
    action = RemoteAction("action_x", EndpointConfig("http://127.0.0.1:9/webhook"))
    good = {"events": [{"event": "slot", "name": "a", "value": 1}],
            "responses": [{"text": "chào"}]}
    before = rasa_runtime._action_result_validator.cache_info().misses
    for _ in range(3):
        assert action._validate_action_result(good) is True
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        action._validate_action_result({"events": "not a list"})
    with pytest.raises(ValidationError):
        action._validate_action_result({"events": [{"no_event_key": 1}]})
    # the schema was checked and the validator built at most once for all of them
    assert rasa_runtime._action_result_validator.cache_info().misses - before <= 1


@pytest.mark.slow
def test_serving_load_predicts_exactly_like_rasas_load(trained) -> None:  # noqa: ANN001
    _, model = trained
    texts = "\n".join(_texts())

    def parse(mode: str) -> list[dict]:
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "rasa_parse_probe.py"),
                               str(model), mode], input=texts, cwd=ROOT, text=True,
                              capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    original, patched = parse("original"), parse("patched")
    assert len(original) == len(patched) == len(texts.splitlines()) >= 30
    for a, b in zip(original, patched, strict=True):
        assert a["intent"] == b["intent"] and a["entities"] == b["entities"]
        assert b["confidence"] == pytest.approx(a["confidence"], abs=1e-5)
        assert [n for n, _ in a["ranking"]] == [n for n, _ in b["ranking"]]
        for (_, ca), (_, cb) in zip(a["ranking"], b["ranking"], strict=True):
            assert cb == pytest.approx(ca, abs=1e-5)


def test_the_stack_starts_rasa_through_the_runtime() -> None:
    source = (ROOT / "bot" / "stack.py").read_text(encoding="utf-8")
    assert '"-m", "bot.rasa_runtime", "run"' in source
    assert Path(ROOT / "bot" / "rasa_runtime.py").exists()
