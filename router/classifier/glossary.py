"""Read Japanese through a word-by-word English gloss.

The MiniLM encoder's vocabulary is English: most kanji a prompt uses (実装, 説明, 簡潔)
are [UNK] to it, so it cannot see what a Japanese prompt asks for. A glossary built from
JMdict (training.glossary_build) maps Japanese words to short English glosses;
each Japanese run of a text is segmented into dictionary words and replaced by their
glosses, so "Pythonでソートアルゴリズムを実装して" reaches the model as
"Python sort algorithm implement" (a request noun with して reads as the English verb).
Text without Japanese passes through unchanged.

Glossary file: gzip'd UTF-8 lines "form<TAB>gloss<TAB>cost"; an empty gloss marks a
grammatical word (particles, auxiliaries) that is consumed but emits nothing. Cost ranks
segmentations: common words are cheaper than rare ones, so the cheapest segmentation
prefers familiar words over odd long matches.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

JAPANESE_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f々〆ヵヶ]+")
HIRAGANA = re.compile(r"[\u3040-\u309f]")
# Japanese punctuation the English tokenizer would not know (NFKC leaves these as they are).
PUNCTUATION = str.maketrans({"、": ",", "。": ".", "「": '"', "」": '"', "『": '"', "』": '"', "・": " ",
                             "？": "?", "！": "!", "（": "(", "）": ")", "：": ":", "　": " "})
# A character no word covers: hiragana are mostly particles and endings, so dropping one is cheap.
SKIP_HIRAGANA_COST = 0.6
SKIP_OTHER_COST = 3.0
DEFAULT_COST = 1.0


class GlossaryError(RuntimeError):
    """The glossary file is missing or malformed."""


class Glossary:
    def __init__(self, glosses: dict[str, str], costs: dict[str, float]) -> None:
        """glosses: form -> gloss; costs: the forms whose cost is not DEFAULT_COST. Two flat
        maps rather than one of tuples: about half the memory for 150k forms."""
        if not glosses:
            raise GlossaryError("glossary is empty")
        self.glosses = glosses
        self.costs = costs
        self.max_len = max(len(form) for form in glosses)

    @classmethod
    def load(cls, path: Path) -> Glossary:
        glosses: dict[str, str] = {}
        costs: dict[str, float] = {}
        distinct: dict[str, str] = {}  # one string object per distinct gloss
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for number, line in enumerate(f, start=1):
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) != 3:
                        raise GlossaryError(f"{path}: line {number}: expected form, gloss, cost")
                    form, gloss, cost = parts[0], distinct.setdefault(parts[1], parts[1]), float(parts[2])
                    glosses[form] = gloss
                    if cost != DEFAULT_COST:
                        costs[form] = cost
                    else:
                        costs.pop(form, None)  # a later line for the same form wins, as it did before
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
            raise GlossaryError(f"{path} cannot be read: {exc}") from None
        return cls(glosses, costs)

    def segment(self, run: str) -> list[str]:
        """The cheapest segmentation of a Japanese run into glossary words (Viterbi over
        character positions); returns the glosses of the chosen words, in order."""
        n = len(run)
        best = [0.0] + [float("inf")] * n
        back: list[tuple[int, str]] = [(0, "")] * (n + 1)
        for i in range(n):
            if best[i] == float("inf"):
                continue
            skip = best[i] + (SKIP_HIRAGANA_COST if HIRAGANA.match(run[i]) else SKIP_OTHER_COST)
            if skip < best[i + 1]:
                best[i + 1], back[i + 1] = skip, (i, "")
            for j in range(i + 1, min(n, i + self.max_len) + 1):
                word = run[i:j]
                gloss = self.glosses.get(word)
                if gloss is None:
                    continue
                cost = best[i] + self.costs.get(word, DEFAULT_COST)
                if cost < best[j]:
                    best[j], back[j] = cost, (i, gloss)
        glosses = []
        j = n
        while j > 0:
            i, gloss = back[j]
            if gloss:
                glosses.append(gloss)
            j = i
        return glosses[::-1]

    def gloss(self, text: str) -> str:
        if not has_japanese(text):
            return text
        glossed = JAPANESE_RUN.sub(lambda m: " " + " ".join(self.segment(m.group())) + " ", text)
        return re.sub(r"[ \t]+", " ", glossed.translate(PUNCTUATION)).strip()


def has_japanese(text: str) -> bool:
    return JAPANESE_RUN.search(text) is not None
