"""Custom actions for the rasa-sdk action server: answers from the procedure catalog.

With DVC_ACTIONS_WARMUP=1 (set by `bot run`, compose and k8s for the action server) the
catalog search index is built in the background as soon as the server imports the actions,
so the first citizen does not wait seconds for an index over thousands of procedures, and
the native thread pools are sized for a serving process (bot/native_threads.py).
"""

import os
import threading

if os.environ.get("DVC_ACTIONS_WARMUP") == "1":
    from bot.config import Settings
    from bot.native_threads import limit_native_threads

    limit_native_threads(Settings.from_env().native_threads)

    def _warm() -> None:
        from actions.catalog_client import get_client

        get_client().index()

    threading.Thread(target=_warm, name="catalog-warmup", daemon=True).start()
