"""`bot.stack.service_env` lists the settings by hand for the child processes (Rasa, the
action server, replicas): a setting missing there would silently fall back to its default
in a child. This test changes every field of `Settings` and reads it back through the
environment the children get, so a new setting cannot be forgotten."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from bot.config import Settings
from bot.stack import service_env

# Values that from_env normalises (case, choices) or that need a partner setting.
SPECIAL: dict[str, object] = {
    "log_level": "DEBUG",
    "status_source": "http",
    "console_secure_cookie": "1",
    "rasa_replicas": 3,  # needs redis_url, set below like every other string
    "actions_replicas": 2,
    "rasa_urls": ("http://10.0.0.1:5005", "http://10.0.0.2:5005", "http://10.0.0.3:5005"),
    "actions_urls": ("http://10.0.1.1:5055", "http://10.0.1.2:5055"),
    "redis_url": "redis://127.0.0.1:6390/2",
    "portal_url": "https://dvc.example.vn",
    "zalo_api_base": "https://zalo.example",
    "zalo_oauth_base": "https://oauth.example",
    "trusted_proxies": "10.0.0.0/8,::1",
    "training_mode": "queue",
}


def changed(name: str, kind: object, default: object) -> object:
    """A value of the field's type that differs from its default."""
    if name in SPECIAL:
        return SPECIAL[name]
    if kind is int:
        return int(default) + 7
    if kind is float:
        return float(default) + 0.25
    if kind is Path:
        return Path(f"/tmp/dvc-env-test/{name}")
    if kind is str:
        return f"x-{name}"
    raise AssertionError(f"no test value for {name}: {kind}")


def test_every_setting_reaches_the_child_processes() -> None:
    hints = typing.get_type_hints(Settings)
    base = Settings()
    values = {}
    for f in dataclasses.fields(Settings):
        default = getattr(base, f.name)
        value = changed(f.name, hints[f.name], default)
        assert value != default, f.name
        values[f.name] = value
    settings = Settings(**values)
    env = service_env(settings)
    assert Settings.from_env(env) == settings
