"""Find lead-form values in one caller utterance, as a speech transcriber writes it.

Pure functions, no I/O, no clock: the caller passes ``now``. Transcripts spell numbers as
words ("five five five", "double five", "חמש אפס"), e-mail as words ("john dot smith at
gmail dot com", "שטרודל", "נקודה"), and dates loosely ("tomorrow at 3", "מחר בשלוש"), so
each finder first rewrites the spoken form and then matches the written one.

E-mail addresses are found by :mod:`callgate.conversation.spoken_email` (``emails``,
``respell_email`` and ``caller_emails`` are re-exported here). Call :func:`extract` once
per caller turn; it returns :class:`Candidates`. The agent decides which candidate fills
which field and validates it with ``form.normalize``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateparser.search import search_dates

from callgate.conversation.spoken_email import caller_emails, emails, respell_email

__all__ = [
    "HEBREW_RE",
    "MIN_PHONE_DIGITS",
    "Candidates",
    "When",
    "caller_emails",
    "detect_language",
    "emails",
    "extract",
    "names",
    "parse_when",
    "phone_runs",
    "respell_email",
    "yes_no",
]

HEBREW_RE = re.compile(r"[\u05d0-\u05ea]")
_WORD_RE = re.compile(r"\+?[\w'\u05f3\u05f4\"]+|[+]")

_UNITS: dict[str, int] = {
    # English, including the "oh" people say for zero.
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
    # Hebrew, feminine and masculine forms.
    "אפס": 0, "אחת": 1, "אחד": 1, "שתיים": 2, "שתים": 2, "שניים": 2, "שנים": 2,
    "שלוש": 3, "שלושה": 3, "ארבע": 4, "ארבעה": 4, "חמש": 5, "חמישה": 5, "שש": 6,
    "שישה": 6, "שבע": 7, "שבעה": 7, "שמונה": 8, "תשע": 9, "תשעה": 9,
}  # fmt: skip
_TEENS: dict[str, int] = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "עשר": 10, "עשרה": 10,
}  # fmt: skip
_TENS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "עשרים": 20, "שלושים": 30, "ארבעים": 40, "חמישים": 50,
    "שישים": 60, "שבעים": 70, "שמונים": 80, "תשעים": 90,
}  # fmt: skip
_REPEAT: dict[str, int] = {"double": 2, "triple": 3, "כפול": 2}
_SOUND_ALIKE: dict[str, int] = {"for": 4, "fore": 4, "to": 2, "too": 2, "ate": 8, "won": 1}
"""Words a transcriber writes for digits it heard ("for one five" is 415). Read as digits
only inside a digit run: before another digit, or (the rare words) right after one."""
_SOUND_ALIKE_AFTER = {"ate", "won"}  # "...seven ate" ends a number; "...2671 for now" does not
_PHONE_GLUE = {"dash", "hyphen", "and", "ו", "מקף", "-"}
MIN_PHONE_DIGITS = 7

_YES = {"yes", "yeah", "yep", "yup", "correct", "right", "exactly", "sure", "affirmative",
        "כן", "נכון", "בדיוק", "כמובן", "נכון מאוד"}  # fmt: skip
_NO = {"no", "nope", "nah", "wrong", "incorrect", "לא", "טעות"}
_NO_PHRASES = ("not right", "not correct", "that's wrong", "לא נכון", "זה לא")
_YES_PHRASES = ("that's right", "that is right", "that is correct", "that's correct",
                "זה נכון", "זה מדויק")  # fmt: skip
_BYE_RE = re.compile(
    r"\b(?:good ?bye|bye|that's all|that is all|gotta go|have to go|i need to go)\b"
    r"|ביי|להתראות|תודה,? זהו|זהו זה|יאללה ביי|שלום ולהתראות",
    re.IGNORECASE,
)

_NAME_STOP = {
    "calling", "looking", "interested", "here", "fine", "good", "not", "just", "trying",
    "a", "an", "the", "sorry", "ok", "okay", "so", "very", "really", "available", "free",
    "sure", "and", "my", "from", "with", "at", "i", "is", "phone", "number", "email",
    "about", "because", "going", "having", "wondering", "on", "in", "to", "but", "also",
    "רוצה", "מתקשר", "מתקשרת", "צריך", "צריכה", "פה", "כאן", "לא", "כן", "של", "שלי",
    "והטלפון", "והמספר", "והמייל", "ואני", "מחפש", "מחפשת", "מעוניין", "מעוניינת", "גם",
    "בעניין", "לגבי", "ו", "הטלפון", "המספר", "מספר", "טלפון",
}  # fmt: skip
_NAME_STRONG_RE = re.compile(
    r"(?:my name is|my name's|name is|קוראים לי|שמי|השם שלי הוא|השם שלי)\s+(.+)", re.I
)
_NAME_WEAK_RE = re.compile(r"(?:^|\b|\s)(?:this is|i'm|i am|it's|it is|אני)\s+(.+)", re.I)
_MAX_NAME_WORDS = 4


@dataclass(frozen=True)
class When:
    """A date and/or time found in speech; ``value`` fills the parts not said from ``now``."""

    value: datetime
    has_date: bool
    has_time: bool


@dataclass(frozen=True)
class Candidates:
    """Everything one utterance might be saying; most tuples are empty most of the time.

    ``names`` come from explicit phrases ("my name is", "קוראים לי"); ``weak_names`` from
    ambiguous ones ("I'm", "אני") that the agent should trust only when it asked for a name.
    ``phones`` are digit strings (with a leading ``+`` if the caller said one).
    """

    text: str
    language: str
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    when: When | None
    names: tuple[str, ...]
    weak_names: tuple[str, ...]
    yes: bool
    no: bool
    goodbye: bool


def detect_language(text: str) -> str | None:
    """``"he"`` if the text has Hebrew letters, ``"en"`` if it has Latin letters, else None."""
    if HEBREW_RE.search(text):
        return "he"
    if re.search(r"[A-Za-z]", text):
        return "en"
    return None


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _strip_vav(word: str) -> str:
    """Hebrew glues "and" (ו) to the next word: "ושתיים" is "and two"."""
    if word.startswith("ו") and word[1:] in _UNITS:
        return word[1:]
    return word


def _is_digit_word(word: str) -> bool:
    word = _strip_vav(word)
    return word.lstrip("+").isdigit() or word in _UNITS or word in _TEENS or word in _TENS


def phone_runs(text: str) -> tuple[str, ...]:
    """Digit strings of at least 7 digits, joining written and spoken digits.

    A run continues across digit groups, digit words, "double"/"triple" and dashes, and
    stops at any other word, so "call me at 415 555 2671 tomorrow" gives one run. Digit
    sound-alikes ("for", "to", "ate") count inside a run; a run that starts with one is
    also given without it, second ("a number for 212 555 0198").
    """
    runs: list[str] = []
    cur = ""
    repeat = 1
    pending_tens: int | None = None
    lead_alike = False

    def flush() -> None:
        nonlocal cur, repeat, pending_tens, lead_alike
        if pending_tens is not None:
            cur += str(pending_tens)
        digits = cur.lstrip("+")
        if len(digits) >= MIN_PHONE_DIGITS:
            runs.append(cur)
            if lead_alike and len(digits) - 1 >= MIN_PHONE_DIGITS:
                runs.append(cur.replace(digits, digits[1:], 1))
        cur, repeat, pending_tens, lead_alike = "", 1, None, False

    words = _words(text.replace("-", " - "))
    for k, raw in enumerate(words):
        word = _strip_vav(raw)
        if word in _SOUND_ALIKE and pending_tens is None:
            following = words[k + 1] if k + 1 < len(words) else ""
            before_digit = _is_digit_word(following) or following in _REPEAT
            if before_digit or (cur.lstrip("+") and word in _SOUND_ALIKE_AFTER):
                lead_alike = lead_alike or not cur.lstrip("+")
                cur += str(_SOUND_ALIKE[word]) * repeat
                repeat = 1
                continue
        if pending_tens is not None and word in _UNITS and _UNITS[word] > 0:
            cur += str(pending_tens + _UNITS[word])
            pending_tens = None
            continue
        if pending_tens is not None:
            cur += str(pending_tens)
            pending_tens = None
        if word in ("+", "plus", "פלוס") and not cur:
            cur = "+"
        elif word.lstrip("+").isdigit():
            cur += ("+" if word.startswith("+") and not cur else "") + word.lstrip("+") * repeat
            repeat = 1
        elif word in _UNITS:
            cur += str(_UNITS[word]) * repeat
            repeat = 1
        elif word in _TEENS:
            cur += str(_TEENS[word])
        elif word in _TENS:
            pending_tens = _TENS[word]
        elif word == "hundred" and cur:
            cur += "00"
        elif word in _REPEAT:
            repeat = _REPEAT[word]
        elif word in _PHONE_GLUE and cur:
            continue
        else:
            flush()
    flush()
    return tuple(runs)


def _cut_name(tail: str) -> str:
    words: list[str] = []
    for word in re.split(r"\s+", tail.strip()):
        clean = word.strip(".,!?;:")
        if not clean or clean.lower() in _NAME_STOP or not re.fullmatch(r"[^\W\d_][\w'\-]*", clean):
            break
        words.append(clean)
        if clean != word or len(words) == _MAX_NAME_WORDS:  # punctuation ends the name
            break
    return " ".join(words)


def names(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(strong, weak) name candidates; see :class:`Candidates`."""
    strong = tuple(n for m in _NAME_STRONG_RE.finditer(text) if (n := _cut_name(m.group(1))))
    weak = tuple(n for m in _NAME_WEAK_RE.finditer(text) if (n := _cut_name(m.group(1))))
    return strong, weak


def yes_no(text: str) -> tuple[bool, bool]:
    """(yes, no) for a read-back answer; a negative phrase wins over a later "right"."""
    low = text.lower().strip()
    words = [w.strip(".,!?") for w in low.split()]
    first = words[0] if words else ""
    no = first in _NO or any(p in low for p in _NO_PHRASES)
    yes = not no and (first in _YES or any(p in low for p in _YES_PHRASES) or low in _YES)
    return yes, no


# --- dates and times -------------------------------------------------------------------

_HOUR_WORDS: dict[str, int] = {
    **{w: n for w, n in _UNITS.items() if n > 0}, **{w: n for w, n in _TEENS.items() if n <= 12},
    "אחת עשרה": 11, "אחת-עשרה": 11, "שתים עשרה": 12, "שתיים עשרה": 12, "noon": 12,
}  # fmt: skip
_HOUR = "|".join(sorted(map(re.escape, _HOUR_WORDS), key=len, reverse=True))
_TIME_RE = re.compile(
    rf"(?:\bat\s+|\bבשעה\s+|(?<![\u05d0-\u05ea])ב-?\s*|(?<![\u05d0-\u05ea])ב־)?"
    rf"(?<!\d)(?P<h>\d{{1,2}}(?!\d)|(?:{_HOUR})(?![\u05d0-\u05ea\w]))"
    r"(?::(?P<m>\d{2})|\s+(?P<half>וחצי|ורבע|thirty|fifteen|forty[- ]five))?"
    r"\s*(?P<ap>a\.?m\.?|p\.?m\.?|o'clock|בבוקר|בערב|בלילה|בצהריים|אחה\"צ|אחר הצהריים"
    r"|אחרי הצהריים|in the morning|in the afternoon|in the evening)?",
    re.IGNORECASE,
)
_MINUTES = {"וחצי": 30, "ורבע": 15, "thirty": 30, "fifteen": 15, "forty-five": 45,
            "forty five": 45}  # fmt: skip
_PM = ("p", "בערב", "בלילה", "אחה", "אחר", "אחרי", "in the afternoon", "in the evening")
_RELATIVE_DAYS = [
    (re.compile(r"day after tomorrow|מחרתיים"), 2),
    (re.compile(r"tomorrow|(?<![\u05d0-\u05ea])מחר(?![\u05d0-\u05ea])"), 1),
    (re.compile(r"\btoday\b|tonight|(?<![\u05d0-\u05ea])היום(?![\u05d0-\u05ea])"), 0),
]
_NOT_DATE_RE = re.compile(r"\S+@\S+|\+?\d[\d\s().\-]{4,}\d")
_LATEST_AM_HOUR = 7  # "at 3" on a business call means 15:00; "at 8" means 08:00


def _find_time(text: str) -> tuple[int, int, tuple[int, int]] | None:
    for m in _TIME_RE.finditer(text):
        h_raw, ap = m.group("h").lower(), (m.group("ap") or "").lower()
        has_cue = m.group(0)[:1] in ("a", "ב", "A") or m.group("m") or ap or h_raw == "noon"
        if not has_cue:
            continue
        hour = int(h_raw) if h_raw.isdigit() else _HOUR_WORDS[h_raw]
        minute = int(m.group("m") or 0) or _MINUTES.get((m.group("half") or "").lower(), 0)
        if hour > 23 or minute > 59:
            continue
        if ap.startswith(_PM) and hour < 12:
            hour += 12
        elif ap.startswith(("a", "בבוקר", "in the morning")) and hour <= 12:
            hour %= 12
        elif not ap and 1 <= hour <= _LATEST_AM_HOUR:
            hour += 12
        return hour, minute, m.span()
    return None


def parse_when(text: str, now: datetime) -> When | None:
    """The first date/time in ``text``, resolved against ``now`` (future preferred).

    Relative days ("tomorrow", "מחר") and clock times ("at 3", "בשלוש וחצי") are parsed
    here because dateparser's Hebrew misses them; other dates go to dateparser
    ``search_dates`` with languages en and he.
    """
    low = text.lower()
    time = _find_time(low)
    rest = low if time is None else low[: time[2][0]] + " " + low[time[2][1] :]
    # Phone numbers and e-mail addresses are not dates (dateparser reads "2671" as a year).
    rest = _NOT_DATE_RE.sub(" ", rest)
    day: datetime | None = None
    for pattern, offset in _RELATIVE_DAYS:
        if pattern.search(rest):
            day = now + timedelta(days=offset)
            break
    if day is None:
        settings = {"RELATIVE_BASE": now, "PREFER_DATES_FROM": "future"}
        found = search_dates(rest, languages=["en", "he"], settings=settings)
        for phrase, value in found or []:
            if len(phrase.strip()) > 3:  # "may", "on" and friends are not dates
                day = value
                break
    if day is None and time is None:
        return None
    base = day if day is not None else now
    value = base.replace(second=0, microsecond=0)
    if time is not None:
        value = value.replace(hour=time[0], minute=time[1])
        if day is None and value < now:
            value += timedelta(days=1)
    elif day is not None:
        value = value.replace(hour=0, minute=0)
    return When(value=value, has_date=day is not None, has_time=time is not None)


def extract(text: str, *, now: datetime) -> Candidates:
    """All candidates in one utterance. Never raises on odd input; returns empty tuples."""
    strong, weak = names(text)
    yes, no = yes_no(text)
    return Candidates(
        text=text.strip(),
        language=detect_language(text) or "en",
        phones=phone_runs(text),
        emails=emails(text),
        when=parse_when(text, now),
        names=strong,
        weak_names=weak,
        yes=yes,
        no=no,
        goodbye=bool(_BYE_RE.search(text)),
    )
