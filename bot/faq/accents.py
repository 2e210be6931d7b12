"""Put the diacritics back on a message typed without them, for the sentence vectors only.

A third of citizens type without diacritics ("lam lai ho chieu mat bao lau"). Lexical
matching folds everything and does not care, but multilingual-e5 reads accent-free
Vietnamese as another language: on citizen rewordings of official questions its top-1
fell from about 0.75 with diacritics to 0.05 without (README "Official Q&A"). Restoring
the marks first brings it back to about 0.6.

The restorer is a syllable bigram model learned from the texts it will be compared with
(the official questions and answers): each accent-free syllable may be any accented form
seen with the same folding ("ho" → hồ, hộ, hỗ, họ…), and the Viterbi path through the
message picks the likeliest sequence. It only needs the corpus, no model download, and a
domain corpus knows "hộ chiếu", "hồ sơ" and "Bộ Công an" better than a general one.
Syllables that already carry marks are kept as typed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from bot.text import TEENCODE, fold, has_tone_marks, nfc

_TOKEN = re.compile(r"\w+")
_CLAUSE = re.compile(r"[.,;:!?()\[\]\"“”/\n–]+|\s-\s")
MAX_CANDIDATES = 8  # accented forms kept per folded syllable (most frequent first)
SMOOTHING = 100.0  # Dirichlet prior mass of the unigram in each bigram estimate
# Below this share of syllables with marks a message counts as typed without diacritics
# (ordinary Vietnamese has marks on well over half of its syllables).
ACCENTED_SHARE = 0.25


def accented_share(text: str) -> float:
    """Share of the alphabetic syllables of `text` that carry Vietnamese marks (đ counts)."""
    words = [w for w in _TOKEN.findall(nfc(text)) if not w.isdigit()]
    if not words:
        return 0.0
    return sum(1 for w in words if fold(w) != w.lower()) / len(words)


class AccentRestorer:
    """A bigram model of accented syllables; `restore` fills in the missing marks."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.unigrams: Counter[str] = Counter()
        self.bigrams: Counter[tuple[str, str]] = Counter()
        for text in texts:
            # Pairs are counted within a clause: "huyện, thị xã" must not teach "huyện thị".
            for clause in _CLAUSE.split(nfc(text or "")):
                words = [w.lower() for w in _TOKEN.findall(clause)]
                self.unigrams.update(words)
                self.bigrams.update(zip(words, words[1:], strict=False))
        by_fold: dict[str, list[str]] = defaultdict(list)
        for word in self.unigrams:
            by_fold[fold(word)].append(word)
        self.candidates = {
            key: sorted(forms, key=lambda w: -self.unigrams[w])[:MAX_CANDIDATES]
            for key, forms in by_fold.items()}
        self.total = sum(self.unigrams.values())
        self.vocab = max(len(self.unigrams), 1)

    def _p_unigram(self, word: str) -> float:
        return (self.unigrams[word] + 0.1) / (self.total + 0.1 * self.vocab)

    def _log_p(self, prev: str, word: str) -> float:
        """log P(word | prev), smoothed towards the unigram so unseen pairs still compete."""
        prior = self._p_unigram(word)
        return math.log((self.bigrams[(prev, word)] + SMOOTHING * prior)
                        / (self.unigrams[prev] + SMOOTHING))

    def _choices(self, token: str, fixed: bool) -> list[str]:
        low = token.lower()
        if fixed or has_tone_marks(token) or "đ" in low:
            return [low]
        return self.candidates.get(low, [low])

    def _viterbi(self, lattice: list[list[str]]) -> list[str]:
        best: list[dict[str, tuple[float, str]]] = [
            {w: (math.log(self._p_unigram(w)), "") for w in lattice[0]}]
        for choices in lattice[1:]:
            prev = best[-1]
            best.append({w: max((score + self._log_p(p, w), p)
                                for p, (score, _) in prev.items()) for w in choices})
        word = max(best[-1], key=lambda w: best[-1][w][0])
        out = [word]
        for step in range(len(best) - 1, 0, -1):
            word = best[step][word][1]
            out.append(word)
        return out[::-1]

    def restore(self, text: str, force: bool = False) -> str:
        """`text` with marks restored on unmarked syllables, punctuation kept.

        A message that already has its marks (share ≥ ACCENTED_SHARE) keeps every syllable
        as typed ("anh", "tin" are words of their own); only its teencode is expanded and
        restored ("giấy j" → "giấy gì"). `force` restores every unmarked syllable.
        """
        text = nfc(text or "")
        restore_all = force or accented_share(text) < ACCENTED_SHARE
        pieces: list[str | list[str]] = []  # literal text, or the tokens of one word
        tokens: list[tuple[str, bool]] = []  # (syllable, keep as typed)
        last = 0
        for m in _TOKEN.finditer(text):
            pieces.append(text[last:m.start()])
            word = m.group(0)
            low = word.lower()
            if low in TEENCODE and not has_tone_marks(word):
                parts = TEENCODE[low].split()
                keep = False
            else:
                parts, keep = [word], not restore_all
            pieces.append(list(parts))
            tokens.extend((p, keep) for p in parts)
            last = m.end()
        pieces.append(text[last:])
        if not tokens or not self.unigrams:
            return text
        chosen = iter(self._viterbi([self._choices(t, keep) for t, keep in tokens]))
        out: list[str] = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            words = []
            for original in piece:
                new = next(chosen)
                words.append(original if has_tone_marks(original) or new == original.lower()
                             else _same_case(original, new))
            out.append(" ".join(words))
        return "".join(out)


def _same_case(original: str, new: str) -> str:
    """Keep the capitalisation the citizen typed ("Bo Cong an" → "Bộ Công an")."""
    if original.isupper() and len(original) > 1:
        return new.upper()
    if original[:1].isupper():
        return new[:1].upper() + new[1:]
    return new
