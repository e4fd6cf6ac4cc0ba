"""Loop and echo detection on the conversation's text, sans-I/O.

Two failures make a phone agent sound broken, and both show in the transcript:

- The agent says nearly the same thing ``repeats`` times in a row (the same question
  after every unclear answer). :meth:`LoopDetector.agent_said` returns
  :class:`LoopDetected` with the configured action: tell the agent to rephrase (the
  instruction text is in the event), transfer to a human, or end the call.
- The agent's own voice leaks back down the line, passes the gate and is transcribed as
  the caller. :meth:`LoopDetector.caller_said` returns :class:`EchoDetected` when a caller
  turn matches what the agent said in the last ``echo_window_ms``; the server drops that
  turn instead of answering it, which would start a conversation with itself.

Text is compared after :func:`normalize` (case, punctuation, Hebrew niqqud and
punctuation removed) with :func:`similarity`, stdlib :class:`difflib.SequenceMatcher`
scores in 0..1. The detector keeps only the current run of agent replies and the replies
inside the echo window. Times are ms passed in by the caller; nothing reads a clock.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal

LoopAction = Literal["rephrase", "transfer", "end"]

DEFAULT_REPHRASE_INSTRUCTION = (
    "You have repeated yourself. Rephrase your last question in different words, "
    "or offer to connect the caller to a human."
)

_JOINERS = frozenset("'\"`’‘׳״")
"""Apostrophes and quotes, incl. Hebrew geresh and gershayim, removed without a space so
that "don't" / "dont" and צה"ל / צהל compare equal. Other punctuation splits words."""


def normalize(text: str) -> str:
    """Return ``text`` casefolded, without marks or punctuation, whitespace collapsed.

    Marks (Unicode category M: accents, Hebrew niqqud and cantillation, after NFKD) are
    removed. Punctuation and symbols (categories P and S, incl. Hebrew maqaf, sof pasuq
    and paseq) become spaces, except apostrophes and quotes, which are removed. Letters
    and digits are kept, so "050-123" stays "050 123".
    """
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text.casefold()):
        cat = unicodedata.category(ch)
        if cat[0] == "M" or ch in _JOINERS:
            continue
        out.append(" " if cat[0] in "PSZC" else ch)
    return " ".join("".join(out).split())


def similarity(a: str, b: str) -> float:
    """Similarity of two texts in 0..1 after :func:`normalize`; symmetric.

    The higher of two :class:`~difflib.SequenceMatcher` ratios: on the characters, and on
    the words sorted, so a reordered sentence ("tell me your name please" / "please tell
    me your name") still counts as the same. Two empty texts are 1.0, one empty is 0.0.
    """
    na, nb = normalize(a), normalize(b)
    if not na or not nb:
        return 1.0 if na == nb else 0.0
    return max(
        _ratio(na, nb),
        _ratio(" ".join(sorted(na.split())), " ".join(sorted(nb.split()))),
    )


def partial_similarity(part: str, whole: str) -> float:
    """Best similarity of ``part`` to any same-length stretch of ``whole``, in 0..1.

    For echoes: the gate often lets through only a piece of a long agent reply, so the
    echoed transcript matches part of it, not the whole. When ``part`` is the longer
    text this is plain :func:`similarity`: a long caller turn that merely contains a
    short agent reply ("yes") is not its echo.
    """
    na, nb = normalize(part), normalize(whole)
    if len(na) >= len(nb) or not na:
        return similarity(part, whole)
    best = _ratio(na, nb)
    matcher = SequenceMatcher(None, na, nb, autojunk=False)
    for block in matcher.get_matching_blocks():
        start = max(0, min(block.b - block.a, len(nb) - len(na)))
        best = max(best, _ratio(na, nb[start : start + len(na)]))
        if best == 1.0:
            break
    return best


def _ratio(a: str, b: str) -> float:
    # SequenceMatcher.ratio() can differ with the argument order; fix it for symmetry.
    # autojunk=False: its popular-character heuristic would ignore spaces in long texts.
    first, second = sorted((a, b))
    return SequenceMatcher(None, first, second, autojunk=False).ratio()


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """When a repeat is a loop and what to do about it (built from settings)."""

    similarity: float = 0.85
    """Similarity at which two consecutive agent replies are the same (LOOP_SIMILARITY)."""
    repeats: int = 3
    """Near-identical agent replies in a row that make a loop (LOOP_REPEATS)."""
    action: LoopAction = "rephrase"
    """What a loop does: tell the agent to rephrase, transfer to a human, or end the call
    (LOOP_ACTION)."""
    rephrase_instruction: str = DEFAULT_REPHRASE_INSTRUCTION
    """Instruction given to the agent when ``action`` is ``rephrase``."""
    echo_similarity: float = 0.8
    """Similarity of a caller turn to a recent agent reply at which it is the agent's echo
    (ECHO_SIMILARITY)."""
    echo_window_ms: int = 10_000
    """How far back, in ms, an agent reply can still come back as an echo."""
    echo_partial_min_words: int = 4
    """A caller turn with at least this many words is also an echo when it matches only a
    part of an agent reply. Shorter turns must match a whole reply: "yes" is an answer to
    "yes or no?", not its echo."""

    def __post_init__(self) -> None:
        if not 0 < self.similarity <= 1:
            raise ValueError(f"similarity must be in (0, 1], got {self.similarity}")
        if not 2 <= self.repeats <= 20:
            raise ValueError(f"repeats must be in 2..20, got {self.repeats}")
        if self.action not in ("rephrase", "transfer", "end"):
            raise ValueError(f"action must be rephrase, transfer or end, got {self.action!r}")
        if not 0 < self.echo_similarity <= 1:
            raise ValueError(f"echo_similarity must be in (0, 1], got {self.echo_similarity}")
        if not 0 <= self.echo_window_ms <= 600_000:
            raise ValueError(f"echo_window_ms must be in 0..600000, got {self.echo_window_ms}")
        if self.echo_partial_min_words < 1:
            raise ValueError(
                f"echo_partial_min_words must be >= 1, got {self.echo_partial_min_words}"
            )


@dataclass(frozen=True, slots=True)
class LoopDetected:
    """The agent has said nearly the same thing ``count`` times in a row."""

    count: int
    """Length of the run so far; reported again on every further repeat, so the server can
    escalate when a rephrase did not help."""
    text: str
    """The latest reply."""
    texts: tuple[str, ...]
    """The whole run, oldest first."""
    similarity: float
    """Lowest similarity between consecutive replies in the run."""
    at_ms: int
    action: LoopAction
    instruction: str | None
    """What to tell the agent when ``action`` is ``rephrase``; otherwise None."""
    kind: Literal["agent_repeat"] = "agent_repeat"


@dataclass(frozen=True, slots=True)
class EchoDetected:
    """A caller turn is the agent's own reply coming back; drop it, do not answer it."""

    caller_text: str
    agent_text: str
    """The agent reply it matched."""
    similarity: float
    at_ms: int
    """When the caller turn was heard."""
    agent_at_ms: int
    """When the matched agent reply was said."""
    action: Literal["drop"] = "drop"
    kind: Literal["caller_echo"] = "caller_echo"


LoopEvent = LoopDetected | EchoDetected


@dataclass(slots=True)
class LoopDetector:
    """Watches agent replies for repeats and caller turns for echoes.

    Call :meth:`agent_said` for every agent reply the caller heard and
    :meth:`caller_said` for every caller turn, in call order; act on what they return.
    """

    options: LoopOptions = field(default_factory=LoopOptions)
    _run: list[str] = field(default_factory=list)
    _run_similarity: float = 1.0
    _recent: deque[tuple[int, str]] = field(default_factory=deque)

    def agent_said(self, text: str, at_ms: int) -> LoopDetected | None:
        """Record an agent reply; return :class:`LoopDetected` once the run is long enough.

        The reply extends the run when it is at least ``options.similarity`` alike to the
        previous one; any other reply starts a new run. Empty replies are ignored.
        """
        if not normalize(text):
            return None
        self._remember(text, at_ms)
        score = similarity(self._run[-1], text) if self._run else 0.0
        if score >= self.options.similarity:
            self._run.append(text)
            self._run_similarity = min(self._run_similarity, score)
        else:
            self._run = [text]
            self._run_similarity = 1.0
        if len(self._run) < self.options.repeats:
            return None
        action = self.options.action
        return LoopDetected(
            count=len(self._run),
            text=text,
            texts=tuple(self._run),
            similarity=self._run_similarity,
            at_ms=at_ms,
            action=action,
            instruction=self.options.rephrase_instruction if action == "rephrase" else None,
        )

    def caller_said(self, text: str, at_ms: int) -> EchoDetected | None:
        """Return :class:`EchoDetected` if this caller turn is a recent agent reply.

        Compared with every agent reply said at or after ``at_ms - echo_window_ms``; the
        best match at or above ``options.echo_similarity`` is reported. The caller's turn
        does not touch the agent's repeat run.
        """
        self._forget(at_ms)
        if not normalize(text):
            return None
        partial = len(normalize(text).split()) >= self.options.echo_partial_min_words
        best: EchoDetected | None = None
        for agent_at_ms, agent_text in self._recent:
            score = similarity(text, agent_text)
            if partial:
                score = max(score, partial_similarity(text, agent_text))
            if score >= self.options.echo_similarity and (best is None or score > best.similarity):
                best = EchoDetected(text, agent_text, score, at_ms, agent_at_ms)
        return best

    def reset(self) -> None:
        """Forget the run and the echo window (e.g. after a transfer or a rephrase fix)."""
        self._run.clear()
        self._run_similarity = 1.0
        self._recent.clear()

    def _remember(self, text: str, at_ms: int) -> None:
        self._recent.append((at_ms, text))
        self._forget(at_ms)

    def _forget(self, now_ms: int) -> None:
        oldest_ms = now_ms - self.options.echo_window_ms
        while self._recent and self._recent[0][0] < oldest_ms:
            self._recent.popleft()
