"""The call's turn-by-turn transcript, built from Realtime API events, sans-I/O.

What the record must hold is what was said and heard on the line, not what the model
produced:

- The caller's transcription arrives as one fragment per committed input item
  (``conversation.item.input_audio_transcription.completed``: ``item_id`` and
  ``transcript``). A caller who pauses mid-sentence gives two fragments. Fragments closer
  than :attr:`TranscriptOptions.merge_gap_ms` with no agent reply between them become one
  caller turn.
- Transcripts can arrive out of order, twice, or corrected. Items are ordered by
  ``previous_item_id`` (``conversation.item.added`` / ``conversation.item.done``) where
  known, else by ``start_ms``. The result depends only on the latest text of each item, not
  on the order in which events arrived.
- At barge-in the agent's reply is cut to the words the caller heard before playback was
  cleared (the same ``audio_end_ms`` as ``conversation.item.truncate``). Word timings from
  a TTS are used when given; otherwise the cut is estimated from the share of audio played.

Calling protocol: feed events to :meth:`Transcript.caller_fragment`,
:meth:`Transcript.agent_turn` and :meth:`Transcript.agent_interrupted` in any order, then
read :meth:`Transcript.turns` or :meth:`Transcript.as_text`. Nothing here raises on odd
input: an interruption for an unknown item waits for its item, an empty transcript is
dropped. Times are ms on the call's clock, passed in by the caller.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Speaker = Literal["caller", "agent"]

WordTiming = tuple[str, int]
"""``(word, end_ms)``: a spoken word and where it ends, in ms from the start of the item's
audio (e.g. the character alignment of a TTS with timestamps, grouped into words)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn on the line, as the call record stores it."""

    speaker: Speaker
    text: str
    """What was said and heard; for a cut agent turn, exactly the heard words, no ellipsis."""
    start_ms: int
    end_ms: int
    interrupted: bool = False
    """True when the caller barged in and the agent's reply was cut."""
    item_id: str | None = None
    """Realtime item id; for merged caller fragments, the first fragment's."""


@dataclass(frozen=True, slots=True)
class TranscriptOptions:
    """How the transcript is assembled (built by the server from settings)."""

    merge_gap_ms: int = 800
    """Caller fragments separated by a pause shorter than this, in ms, are one turn
    (TRANSCRIPT_MERGE_GAP_MS). 0 merges only overlapping fragments."""

    def __post_init__(self) -> None:
        if not 0 <= self.merge_gap_ms <= 10_000:
            raise ValueError(f"merge_gap_ms must be in 0..10000, got {self.merge_gap_ms}")


@dataclass(slots=True)
class _Item:
    """One Realtime conversation item as last reported."""

    speaker: Speaker
    item_id: str
    text: str
    start_ms: int
    end_ms: int
    previous_item_id: str | None = None
    audio_ms: int = 0
    words: tuple[WordTiming, ...] | None = None


@dataclass(slots=True)
class Transcript:
    """Collects caller fragments and agent replies; renders them in spoken order."""

    options: TranscriptOptions = field(default_factory=TranscriptOptions)
    _items: dict[str, _Item] = field(default_factory=dict)
    _heard_ms: dict[str, int] = field(default_factory=dict)
    """Barge-in cut points by agent item id; may arrive before the item's text."""

    def caller_fragment(
        self,
        item_id: str,
        text: str,
        start_ms: int,
        end_ms: int,
        previous_item_id: str | None = None,
    ) -> None:
        """Record the caller's transcript for one input item.

        A repeat with the same text is ignored (it can only add a missing
        ``previous_item_id``); different text replaces the item's text and times
        (a transcription correction). An empty transcript is dropped, but its
        ``previous_item_id`` still links the item into the order.
        """
        text = text.strip()
        item = self._items.get(item_id)
        if item is None:
            self._items[item_id] = _Item(
                "caller", item_id, text, start_ms, max(start_ms, end_ms), previous_item_id
            )
            return
        if item.speaker != "caller":
            return  # an agent item's id: not ours to change
        if item.previous_item_id is None:
            item.previous_item_id = previous_item_id
        if text and text != item.text:
            item.text = text
            item.start_ms = start_ms
            item.end_ms = max(start_ms, end_ms)

    def agent_turn(
        self,
        item_id: str,
        text: str,
        start_ms: int,
        audio_ms: int,
        *,
        words: Sequence[WordTiming] | None = None,
        previous_item_id: str | None = None,
    ) -> None:
        """Record the agent's full reply: its text and how long its audio is.

        ``start_ms`` is when its playback began on the line; ``words`` are optional word
        timings, which make a later barge-in cut exact. A second call for the same item
        replaces the text (e.g. the final ``response.output_audio_transcript.done``).
        """
        audio_ms = max(0, audio_ms)
        item = _Item(
            "agent",
            item_id,
            text.strip(),
            start_ms,
            start_ms + audio_ms,
            previous_item_id,
            audio_ms,
            tuple(words) if words is not None else None,
        )
        old = self._items.get(item_id)
        if old is not None and item.previous_item_id is None:
            item.previous_item_id = old.previous_item_id
        if old is not None and item.words is None:
            item.words = old.words
        self._items[item_id] = item

    def agent_words(self, item_id: str, words: Sequence[WordTiming]) -> None:
        """Attach word timings that arrived after the item's text (a TTS alignment)."""
        item = self._items.get(item_id)
        if item is not None and item.speaker == "agent":
            item.words = tuple(words)

    def agent_interrupted(self, item_id: str, heard_ms: int) -> None:
        """The caller barged in after ``heard_ms`` of this agent item had played.

        May come before :meth:`agent_turn` for the item (a cancelled response's
        transcript can finish after the barge-in); the cut is applied when it arrives.
        A second interruption of the same item keeps the earlier cut point.
        """
        heard_ms = max(0, heard_ms)
        self._heard_ms[item_id] = min(heard_ms, self._heard_ms.get(item_id, heard_ms))

    def turns(self) -> list[Turn]:
        """Return the turns in spoken order: caller fragments merged, agent replies cut.

        Items with no text left (an empty transcript, an agent reply interrupted before
        its first word ended) are not turns.
        """
        out: list[Turn] = []
        last_caller: Turn | None = None
        for item in self._ordered():
            if item.speaker == "agent":
                last_caller = None
                turn = self._agent(item)
                if turn.text:
                    out.append(turn)
                continue
            if not item.text:
                continue
            merge_gap_ms = self.options.merge_gap_ms
            if last_caller is not None and item.start_ms - last_caller.end_ms < merge_gap_ms:
                merged = Turn(
                    "caller",
                    f"{last_caller.text} {item.text}",
                    min(last_caller.start_ms, item.start_ms),
                    max(last_caller.end_ms, item.end_ms),
                    item_id=last_caller.item_id,
                )
                out[-1] = last_caller = merged
            else:
                last_caller = Turn(
                    "caller", item.text, item.start_ms, item.end_ms, item_id=item.item_id
                )
                out.append(last_caller)
        return out

    def as_text(self) -> str:
        """Render as ``Caller: ...`` / ``Agent: ...`` lines, one per turn.

        A cut agent turn ends with `` —`` here, so the text reads like the line sounded;
        the stored :attr:`Turn.text` never carries it.
        """
        lines = []
        for turn in self.turns():
            who = "Caller" if turn.speaker == "caller" else "Agent"
            lines.append(f"{who}: {turn.text}{' —' if turn.interrupted else ''}")
        return "\n".join(lines)

    def _agent(self, item: _Item) -> Turn:
        heard_ms = self._heard_ms.get(item.item_id)
        if heard_ms is None or heard_ms >= item.audio_ms:
            return Turn("agent", item.text, item.start_ms, item.end_ms, item_id=item.item_id)
        text = cut_text(item.text, heard_ms, item.audio_ms, item.words)
        return Turn("agent", text, item.start_ms, item.start_ms + heard_ms, True, item.item_id)

    def _ordered(self) -> list[_Item]:
        """Order items by ``previous_item_id`` chains, chains merged by ``start_ms``.

        Deterministic in the set of items: a chain starts at an item whose predecessor is
        unknown; an item claimed by several successors continues with the earliest, the
        others start chains of their own; a cycle is broken at its earliest item. The
        chains are then merged like sorted lists on ``(start_ms, item_id)``.
        """
        items = self._items
        successors: dict[str, list[_Item]] = {}
        heads: list[_Item] = []
        for item in items.values():
            prev = item.previous_item_id
            if prev is not None and prev in items and prev != item.item_id:
                successors.setdefault(prev, []).append(item)
            else:
                heads.append(item)
        for group in successors.values():
            group.sort(key=_key)
            heads.extend(group[1:])
        chains: list[list[_Item]] = []
        seen: set[str] = set()

        def walk(start: _Item) -> None:
            chain: list[_Item] = []
            node: _Item | None = start
            while node is not None and node.item_id not in seen:
                seen.add(node.item_id)
                chain.append(node)
                nxt = successors.get(node.item_id)
                node = nxt[0] if nxt else None
            if chain:
                chains.append(chain)

        for head in sorted(heads, key=_key):
            walk(head)
        for item in sorted(items.values(), key=_key):  # only cycles are left
            walk(item)
        return list(_merge(chains))


def _key(item: _Item) -> tuple[int, str]:
    return (item.start_ms, item.item_id)


def _merge(chains: list[list[_Item]]) -> Iterable[_Item]:
    """K-way merge: keep each chain's order, interleave chains by their fronts' keys."""
    heap = [(_key(chain[0]), n, 0) for n, chain in enumerate(chains)]
    heapq.heapify(heap)
    while heap:
        _, n, i = heapq.heappop(heap)
        yield chains[n][i]
        if i + 1 < len(chains[n]):
            heapq.heappush(heap, (_key(chains[n][i + 1]), n, i + 1))


def cut_text(
    text: str, heard_ms: int, audio_ms: int, words: Sequence[WordTiming] | None = None
) -> str:
    """Return the words of ``text`` heard in the first ``heard_ms`` of ``audio_ms`` audio.

    With word timings, the heard words are those that end by ``heard_ms``, and the cut
    falls after that many words of ``text``. Without them the cut is estimated at the
    same share of the characters as of the audio (``len * heard_ms / audio_ms``), backed
    off to the last word boundary, so a half-played word is not claimed as heard. The
    result is always a prefix of ``text`` that ends at a word boundary, without
    trailing space and with no ellipsis added.
    """
    if audio_ms <= 0 or heard_ms >= audio_ms:
        return text
    if heard_ms <= 0:
        return ""
    if words is not None:
        heard = " ".join(word for word, end_ms in words if end_ms <= heard_ms)
        return _first_words(text, len(heard.split()))
    pos = len(text) * heard_ms // audio_ms
    if pos >= len(text):
        return text
    if not text[pos].isspace():
        while pos > 0 and not text[pos - 1].isspace():
            pos -= 1
    return text[:pos].rstrip()


def _first_words(text: str, count: int) -> str:
    """The prefix of ``text`` through its ``count``-th whitespace-separated word."""
    if count <= 0:
        return ""
    in_word = False
    seen = 0
    for i, ch in enumerate(text):
        if ch.isspace():
            if in_word and seen == count:
                return text[:i]
            in_word = False
        elif not in_word:
            in_word = True
            seen += 1
    return text
