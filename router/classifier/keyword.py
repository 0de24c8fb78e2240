"""A keyword classifier: no model, microseconds per prompt, English and Japanese cues.

It is the last-resort backend and the one the engine falls back to when a model
backend fails. Scores are cue weights turned into probabilities with a softmax.

Its work is linear in the input whatever the input: no cue pattern can backtrack over the
text (a cue that needs one word before another on the same line is two searches, not `a.*b`),
and a long turn is read by its head and tail only, where a request's instruction sits
(bench/keyword_worst_case.py times the worst inputs found).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from router.classifier.prediction import TASK_LABELS, Prediction, complexity_score
from router.classifier.text import MAX_CONTEXT_CHARS, split_turn_and_context

# A long turn is read by its first and last characters only.
HEAD_CHARS = 4000
TAIL_CHARS = 2000


class FollowedBy:
    """`first`, then `then` later on the same line: what `first.*then` means, in linear time."""

    def __init__(self, first: str, then: str) -> None:
        self.first = re.compile(first, re.IGNORECASE)
        self.then = re.compile(then, re.IGNORECASE)

    def search(self, text: str) -> bool:
        for line in text.split("\n"):
            found = self.first.search(line)
            if found is not None and self.then.search(line, found.end()):
                return True
        return False


Cue = re.Pattern[str] | FollowedBy


def _patterns(*pairs: tuple[str, float]) -> list[tuple[re.Pattern[str], float]]:
    return [(re.compile(p, re.IGNORECASE), w) for p, w in pairs]


def _cues(*pairs: tuple[str | tuple[str, str], float]) -> list[tuple[Cue, float]]:
    return [(FollowedBy(*p) if isinstance(p, tuple) else re.compile(p, re.IGNORECASE), w) for p, w in pairs]


TASK_CUES: dict[str, list[tuple[Cue, float]]] = {
    "Code Generation": _cues(
        (r"\b(python|javascript|typescript|java|rust|golang|c\+\+|sql|bash|regex|html|css)\b", 1.5),
        (r"\b(code|function|implement\w*|script|program|class|method|api|bug|debug|refactor|compile)\b", 1.5),
        (r"```|\bdef |\breturn\b|;\s*$|\{\s*$", 2.0),
        (r"実装|コード|関数|プログラム|スクリプト|バグ|デバッグ", 2.0),
        ((r"書いて", r"python|java|sql"), 2.0),
        (r"\b(algorithm|sort|binary search|linked list)\b|アルゴリズム", 0.6),
        ((r"\b(design|build|write) (a|an)\b", r"\b(service|system|library|server|cli|operator|parser)\b"), 0.8),
    ),
    "Open QA": _cues(
        (r"^\s*(what|why|how|who|when|where|which|is|are|can|does|do)\b", 1.2),
        (r"\?\s*$|？\s*$", 0.8),
        (r"\b(explain|describe|tell me about|what is|difference between)\b", 1.5),
        (r"説明して|教えて|とは|なぜ|どうして|どのように|違いは|ですか", 1.8),
        (r"^\s*(prove|solve|calculate|compute|derive|find the)\b|証明して|解いて|求めて", 1.5),
    ),
    "Closed QA": _cues(
        (r"\b(based on|according to|given (the|this) (text|passage|context|article)|from the (text|passage))\b",
         2.5),
        (r"に基づいて|によると", 2.5),
        (r"次の文章|本文", 1.0),
    ),
    "Summarization": _cues(
        (r"\b(summari[sz]e|summary|tl;?dr|key points|condense|recap|gist)\b", 2.5),
        (r"要約|まとめて|まとめる|要点", 2.5),
    ),
    "Text Generation": _cues(
        ((r"\b(write|compose|draft|generate|create)\b", r"\b(story|poem|essay|email|letter|blog|article|post|"
          r"speech|song|lyrics|description|paragraph|tweet|review)\b"), 2.5),
        (r"\b(story|poem|haiku|essay|novel|fiction)\b", 1.2),
        (r"物語|小説|詩|エッセイ|メール|手紙|記事|文章を書いて|作文", 2.0),
    ),
    "Chatbot": _cues(
        (r"^\s*(hi|hello|hey|good (morning|evening)|thanks|thank you|how are you)\b", 2.5),
        (r"\b(let'?s chat|talk to me|how('?s| is) your day)\b", 2.0),
        (r"こんにちは|こんばんは|おはよう|ありがとう|元気", 2.5),
    ),
    "Classification": _cues(
        (r"\b(classify|categori[sz]e|which category|sentiment|label (this|the)|is (this|it) (positive|negative|"
         r"spam))\b", 2.5),
        (r"分類|カテゴリ|感情分析|ポジティブかネガティブ", 2.5),
    ),
    "Rewrite": _cues(
        (r"\b(rewrite|rephrase|paraphrase|reword|proofread|polish|edit this|fix (the )?grammar|"
         r"make (it|this) (more|less|shorter|longer|simpler|formal|casual))\b", 2.5),
        (r"\b(shorter|simpler|more concise|more formal|more casual|translate)\b", 1.2),
        (r"言い換え|書き直|簡潔に|短く|丁寧に|校正|添削|翻訳", 2.2),
    ),
    "Brainstorming": _cues(
        (r"\b(brainstorm|ideas?|suggestions?|come up with|list (some|\d+|a few) (ways|options|names))\b", 2.2),
        (r"アイデア|アイディア|案を|ブレスト|ブレインストーミング|提案して", 2.2),
    ),
    "Extraction": _cues(
        (r"\b(extract|pull out|find all|list (all|every) (the )?(names|dates|emails|numbers|entities)|"
         r"identify (all|the) (names|dates|entities))\b", 2.5),
        (r"抽出|抜き出|取り出して", 2.5),
    ),
    "Other": _cues(),
}

# A short follow-up after an answer ("make it shorter", "もっと簡潔に") reworks that answer.
FOLLOW_UP = re.compile(
    r"\b(shorter|simpler|more concise|again|instead|rewrite|rephrase|make it|shorten|expand on|"
    r"in (fewer|simpler) words)\b|もっと|簡潔|短く|まとめて|言い換え|書き直|わかりやすく",
    re.IGNORECASE,
)

PRIOR = 0.2
OTHER_PRIOR = 0.9
TEMPERATURE = 1.6

DIMENSION_CUES: dict[str, list[tuple[re.Pattern[str], float]]] = {
    "creativity": _patterns(
        (r"\b(story|poem|haiku|creative|imagine|fiction|lyrics|novel|slogan|metaphor|invent)\b", 0.45),
        (r"物語|小説|詩|創作|想像|キャッチコピー", 0.45),
        (r"\b(brainstorm|ideas?|original|unique)\b|アイデア", 0.3),
    ),
    "reasoning": _patterns(
        (r"\b(prove|proof|derive|why|step[- ]by[- ]step|calculate|solve|optimi[sz]e|complexity|trade-?offs?|"
         r"analy[sz]e|compare|reason|deduce|estimate|evaluate)\b", 0.3),
        (r"証明|導出|なぜ|計算|解いて|最適|計算量|比較|分析|推論", 0.3),
        # (?<!\d): start only where a number starts, so a long run of digits is read once.
        (r"(?<!\d)\d+\s*[-+*/^=]\s*\d|\bequation\b|\bintegral\b|\bprobability\b|方程式|確率", 0.35),
    ),
    "constraints": _patterns(
        (r"\b(must|exactly|at most|at least|no more than|without|only|do not|don'?t|format|json|yaml|"
         r"in \d+ (words|sentences|lines)|bullet)", 0.25),
        (r"必ず|以内|以上|のみ|禁止|形式|字で|箇条書き", 0.25),
    ),
    "domain_knowledge": _patterns(
        (r"\b(quantum|kubernetes|tensor|theorem|legal|medical|clinical|compiler|kernel|cryptograph\w*|"
         r"distributed|thermodynamic\w*|genom\w*|pharmac\w*|jurisdiction|derivative|eigen\w*|gpu|cuda)\b", 0.3),
        (r"量子|法律|医療|臨床|暗号|分散|熱力学|遺伝|微分|固有値", 0.3),
    ),
    "few_shot": _patterns(
        (r"\b(example|e\.g\.|for instance|input:|output:|q:|a:)", 0.35),
        (r"例:|例：|入力:|出力:", 0.35),
    ),
}


def _cue_score(cues: list[tuple[Cue, float]], text: str) -> float:
    return sum(w for pattern, w in cues if pattern.search(text))


def _cue_count_score(cues: list[tuple[re.Pattern[str], float]], text: str) -> float:
    """Like _cue_score, but each occurrence counts: three reasoning cues say more than one."""
    return sum(w * len(pattern.findall(text)) for pattern, w in cues)


def _softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exps = {k: math.exp((v - top) * TEMPERATURE) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


class KeywordClassifier:
    name = "keyword"

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._one(text) for text in texts]

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "provider": "keyword", "model": None, "difficulty": "complexity score"}

    def _one(self, text: str) -> Prediction:
        turn, context = split_turn_and_context(text)
        length = len(turn)
        if length > HEAD_CHARS + TAIL_CHARS:
            turn = turn[:HEAD_CHARS] + "\n" + turn[-TAIL_CHARS:]
        context = context[-MAX_CONTEXT_CHARS:]
        scores = {label: _cue_score(TASK_CUES[label], turn) + PRIOR for label in TASK_LABELS}
        scores["Other"] = OTHER_PRIOR
        if context and len(turn) <= 120 and FOLLOW_UP.search(turn):
            scores["Rewrite"] += 3.0
        probabilities = _softmax(scores)
        task = max(probabilities, key=probabilities.__getitem__)
        dimensions = self._dimensions(turn, context, task, length)
        return Prediction(task, probabilities, complexity_score(dimensions), dimensions, self.name)

    @staticmethod
    def _dimensions(turn: str, context: str, task: str, turn_chars: int) -> dict[str, float]:
        dims = {name: min(1.0, _cue_count_score(cues, turn)) for name, cues in DIMENSION_CUES.items()}
        if task in ("Text Generation", "Brainstorming"):
            dims["creativity"] = max(dims["creativity"], 0.5)
        if task == "Code Generation":
            dims["reasoning"] = max(dims["reasoning"], 0.3)
            dims["domain_knowledge"] = max(dims["domain_knowledge"], 0.3)
        # Derivations and proofs need some originality even without creative-writing cues.
        dims["creativity"] = max(dims["creativity"], 0.3 * dims["reasoning"])
        # Long prompts carry more constraints and domain detail than their cues show.
        length = min(1.0, turn_chars / 1500)
        dims["constraints"] = min(1.0, dims["constraints"] + 0.3 * length)
        dims["domain_knowledge"] = min(1.0, dims["domain_knowledge"] + 0.2 * length)
        dims["contextual_knowledge"] = min(1.0, (0.4 if context else 0.0) + 0.5 * length)
        return {k: round(v, 4) for k, v in dims.items()}
