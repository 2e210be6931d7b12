"""Chat with the assistant in a terminal, through the same gateway API the web page uses."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid

from bot.config import Settings


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def run_shell(settings: Settings, start: bool = False) -> int:
    """Read lines, print the bot's messages; a number picks one of the last buttons."""
    stack = None
    base = f"http://{settings.bot_host}:{settings.bot_port}"
    if start:
        from bot.catalog.snapshot import prepare_catalog
        from bot.cli import _model_or_train
        from bot.stack import Stack

        prepare_catalog(settings)
        stack = Stack(settings, _model_or_train(settings))
        print("Đang khởi động trợ lý...", file=sys.stderr)
        stack.start()
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=5).close()
    except urllib.error.HTTPError:
        pass  # degraded but answering: chat anyway, the gateway will apologise if needed
    except (urllib.error.URLError, OSError):
        print(f"Không kết nối được tới trợ lý ở {base}. Hãy chạy `make run` ở cửa sổ khác, "
              "hoặc dùng `bot shell --start`.", file=sys.stderr)
        return 1
    sender = f"shell-{uuid.uuid4().hex[:8]}"
    buttons: list[dict] = []
    print("Gõ câu hỏi (Ctrl-D hoặc /thoat để kết thúc).")
    try:
        while True:
            try:
                text = input("Bạn: ").strip()
            except EOFError:
                break
            if not text:
                continue
            if text in {"/thoat", "/quit", "/exit"}:
                break
            if text.isdigit() and buttons and 1 <= int(text) <= len(buttons):
                text = buttons[int(text) - 1]["payload"]
            status, body = _post(f"{base}/api/v1/chat", {"sender": sender, "text": text})
            if "messages" not in body:
                print(f"[lỗi {status}] {body.get('error', {}).get('message', body)}")
                continue
            buttons = []
            for msg in body["messages"]:
                if msg.get("text"):
                    print(f"Trợ lý: {msg['text']}")
                for b in msg.get("buttons") or []:
                    buttons.append(b)
                    print(f"  [{len(buttons)}] {b['title']}")
    finally:
        if stack is not None:
            stack.stop()
    return 0
