"""The portal's official Q&A as a second source of answers, quoted with attribution.

* `store` — the shipped snapshot (`data/dvcqg/faq_kb.jsonl`), read defensively;
* `accents` — diacritics restored on accent-free messages, for the sentence vectors;
* `hybrid` — lexical + e5 matching of a message to written questions (also used by
  `bot.knowledge`);
* `matcher` — `match(text)`: the official answers a message asks for, with `confident`;
* `quote` — an answer shortened for a chat, attributed to its ministry, with its link;
* `evaluate` — `bot eval faq FILE`.
"""

from bot.faq.matcher import THRESHOLD, FaqHit, FaqIndex, default_index, match
from bot.faq.quote import quote, related_line, shorten
from bot.faq.store import FAQ_FILE, FaqEntry, load_faq

__all__ = ["FAQ_FILE", "THRESHOLD", "FaqEntry", "FaqHit", "FaqIndex", "default_index",
           "load_faq", "match", "quote", "related_line", "shorten"]
