"""What the NLU's retrieval found, read back in the action server.

The retrieval (bot/nlu/retrieval.py) ranks procedures and matches the official Q&A and the
general-knowledge file once per message; the actions read those results from the tracker's
`latest_message` instead of searching again, and word them here.
"""

from __future__ import annotations

from typing import Any

from bot.catalog.search import SearchResult


def chosen_code(entities: list[dict[str, Any]]) -> str | None:
    """A procedure code the citizen chose with a button (an entity without candidates)."""
    for e in entities:
        if e.get("entity") == "procedure" and "candidates" not in e and e.get("value"):
            value = str(e["value"])
            if any(ch.isdigit() for ch in value) and "." in value:
                return value
    return None


def ranked_hits(found: dict[str, Any]) -> list[SearchResult] | None:
    """The NLU's ranked procedures, or None when the message was not searched there."""
    if "procedures" not in found:
        return None
    return [SearchResult(str(h["code"]), str(h["name"]), float(h["score"]))
            for h in found["procedures"]]


def confident_hit(hits: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The best hit when the matcher was sure enough to answer from it (and it is worded)."""
    for hit in hits or []:
        if hit.get("confident") and (hit.get("quote") or hit.get("text")):
            return hit
    return None


def quote_faq(hit: dict[str, Any]) -> str:
    """An official answer quoted as the ministry's words, with its link (bot.faq.quote,
    worded by the retrieval)."""
    return str(hit.get("quote") or "")


RELATED_LINKS = 2  # "possibly related" official questions listed under an answer


def related_faq(hits: list[dict[str, Any]] | None,
                quoted: dict[str, Any] | None = None) -> str:
    """Official questions close to the message, other than the one quoted, as links.

    They point a citizen whose case the catalog card (or the quoted answer) does not settle
    to the ministries' own answers, without presenting any as the answer: the portal holds
    many near-duplicates (the same question answered for another case or by another
    ministry), and the closest by score is often not the one that fits.
    """
    skip = quoted.get("id") if quoted else None
    lines = [str(h["line"]) for h in hits or []
             if h.get("related") and h.get("line") and h.get("id") != skip]
    if not lines:
        return ""
    title = "Hỏi đáp chính thức khác" if quoted else "Hỏi đáp chính thức"
    return (f"{title} có thể liên quan (bấm vào để đọc câu trả lời):\n"
            + "\n".join(lines[:RELATED_LINKS]))


def render_knowledge(hit: dict[str, Any]) -> str:
    """A general-knowledge answer with its sources (bot.knowledge.render)."""
    return str(hit.get("text") or "")
