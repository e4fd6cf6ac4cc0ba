"""E-mail addresses in one caller utterance, as a speech transcriber writes them.

Pure functions, no I/O. Callers spell addresses as words ("john dot smith at gmail dot
com", "j o h n", "שטרודל", "נקודה"), and the transcriber adds its own forms: the spoken
"dot" as a full stop, "and" for "at", an "at" glued into the words around it. Used by
:mod:`callgate.conversation.extract` (re-exported there) and ``form.normalize``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["caller_emails", "emails", "respell_email"]

_SPOKEN_EMAIL = [
    (r"\s+(?:at|שטרודל|@)\s+", "@"),
    (r"\s+(?:dot|נקודה|\.)\s+", "."),
    (r"\s+(?:underscore|קו תחתון)\s+", "_"),
    (r"\s+(?:dash|hyphen|מקף)\s+", "-"),
]
_EMAIL_RE = re.compile(r"[a-z0-9][a-z0-9._%+\-]*@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+", re.I)
_SPELLED_RE = re.compile(r"\b[a-z](?:(?:[-.]\s?|\s)[a-z]\b)+\.?")
"""Letters spelled one by one, as a transcriber writes them: "j o h n", "J-O-H-N", "j. o"."""
_PERIOD_IN_LOCAL_RE = re.compile(r"\b([a-z0-9]+)\.\s+(?=[a-z0-9]+\s+at\s)")
"""A spoken "dot" written as a sentence's full stop: "Dana. Cohen at example.com"."""
_NOT_LOCAL = {"is", "it's", "thanks", "sure", "yes", "yeah", "okay", "ok", "so", "well",
              "right", "sorry", "please", "um", "uh", "address", "email", "mail"}  # fmt: skip
_MAIL_HOSTS = ("gmail", "yahoo", "outlook", "hotmail", "icloud", "aol", "proton", "live",
               "msn", "mail", "example", "walla")  # fmt: skip


def _spoken_email(spoken: str) -> str:
    """Rewrite a spoken address ("dana dot cohen at example dot com") in written form."""
    for pattern, repl in _SPOKEN_EMAIL:
        spoken = re.sub(pattern, repl, spoken)
    return spoken


def _unglue_at(token: str) -> str | None:
    """ "catsatexample.org" -> "cats@example.org": an "at" heard inside one word.

    A split that leaves a known mail host wins (there "and" counts too: "leviandgmail.com");
    otherwise the last "at"; otherwise none.
    """
    splits = [
        (m.group(0), token[: m.start()], token[m.end() :])
        for m in re.finditer(r"at|and", token)
        if m.start() > 0 and "." in token[m.end() + 1 :]
    ]
    hosted = [(a, b) for _, a, b in splits if b.split(".")[0] in _MAIL_HOSTS]
    plain = [(a, b) for word, a, b in splits if word == "at"]
    if not hosted and not plain:
        return None
    local, domain = hosted[0] if hosted else plain[-1]
    return f"{local}@{domain}"


def emails(text: str) -> tuple[str, ...]:
    """E-mail addresses, written or spoken ("john dot smith at gmail dot com").

    Also what a transcriber makes of spoken ones: letters spelled one by one, the "dot"
    before the "at" written as a full stop, "and" heard for "at", and an "at" glued into
    one word ("emilyatdavis.org"). Most likely first.
    """
    found = [m.group(0).rstrip(".") for m in _EMAIL_RE.finditer(text)]
    if found:
        return tuple(found)
    spoken = f" {text.lower().strip(' .?!')} "
    spoken = _SPELLED_RE.sub(lambda m: re.sub(r"[-.\s]", "", m.group(0)), spoken)
    dotted = _PERIOD_IN_LOCAL_RE.sub(
        lambda m: m.group(0) if m.group(1) in _NOT_LOCAL else f"{m.group(1)} dot ", spoken
    )
    tries = [dotted, spoken]  # a full stop before the local part's end is mostly a "dot"
    out: list[str] = []
    for attempt in tries:
        out += [m.group(0).rstrip(".") for m in _EMAIL_RE.finditer(_spoken_email(attempt))]
    if not out and re.search(r"\s(?:and)\s", spoken):
        written = _spoken_email(re.sub(r"\s+and\s+", " at ", spoken))
        out += [m.group(0).rstrip(".") for m in _EMAIL_RE.finditer(written)]
    if not out:
        for token in _spoken_email(spoken).split():
            address = _unglue_at(token.strip(".,!?"))
            if address and _EMAIL_RE.fullmatch(address):
                out.append(address)
    return tuple(dict.fromkeys(out))


def _sound_key(word: str) -> str:
    """A rough English sound key: "katz" and "cats", "sarah" and "sera" share one."""
    w = word.lower()
    for a, b in (("ph", "f"), ("ck", "k"), ("c", "k"), ("q", "k"), ("z", "s"), ("x", "ks")):
        w = w.replace(a, b)
    head, rest = w[:1], re.sub(r"[aeiouyhw]", "", w[1:])
    key = head + rest
    return re.sub(r"(.)\1+", r"\1", key)


def respell_email(address: str, name: str) -> str:
    """Spell the address's local part like the caller's name where it sounds the same.

    Addresses are often made of the name ("daniel dot cats at ..." from Daniel Katz);
    the transcriber spells a heard word the common way, the caller gave the name's way.
    A shorter form of a name part ("dan" for Dana) is left alone: it may be the real one.
    A "com"/"org"/"net" inside the local part is a name part misheard as the "dot com"
    the transcriber expects, when it sounds close ("dana dot com at" from Dana Cohen).
    """
    local, _, domain = address.partition("@")
    parts = [n.lower() for n in re.findall(r"[^\W\d_]+", name) if len(n) > 1]
    pieces: list[str] = re.split(r"([._\-])", local)
    fixed = [_name_part(p, parts) if p.isalpha() and len(p) > 1 else p for p in pieces]
    return "".join(fixed) + "@" + domain


def caller_emails(text: str, found: Sequence[str], name: str) -> tuple[str, ...]:
    """The addresses ``emails`` found in ``text``, read with the caller's name in mind.

    Each is respelled after the name (:func:`respell_email`). Before that, a local part
    that is one of the name's parts, right after a word that is another of them, gets that
    word and a dot: the transcriber lost the spoken "dot" between the two ("daniel katz
    at example dot org" from "daniel dot katz at ...", often written after the "My name is"
    of the e-mail prompt); the surname alone, with the first name said before it, is the
    less likely reading.
    """
    parts = [n.lower() for n in re.findall(r"[^\W\d_]+", name) if len(n) > 1]
    low = text.lower()
    out: list[str] = []
    for written in found:
        address = written
        local, _, domain = written.partition("@")
        own = _which_part(local, parts)
        if own is not None:
            before = re.search(rf"\b([^\W\d_]+)[\s,]+{re.escape(local)}\s*(?:@|at\b)", low)
            other = _which_part(before.group(1), parts) if before else None
            if before and other is not None and other != own:
                address = f"{before.group(1)}.{local}@{domain}"
        out.append(respell_email(address, name) if name else address)
    return tuple(dict.fromkeys(out))


def _which_part(word: str, parts: list[str]) -> int | None:
    """The index of the name part that ``word`` is, as spelled or as it sounds."""
    if not re.fullmatch(r"[^\W\d_]{2,}", word):
        return None
    for k, part in enumerate(parts):
        if word == part or _sound_key(word) == _sound_key(part):
            return k
    return None


def _name_part(word: str, parts: list[str]) -> str:
    key = _sound_key(word)
    for part in parts:
        if part.startswith(word) or word.startswith(part):
            continue
        other = _sound_key(part)
        if key == other:
            return part
        if word in ("com", "org", "net") and key[0] == other[0] and _one_apart(key, other):
            return part
    return word


def _one_apart(a: str, b: str) -> bool:
    """At most one letter replaced, inserted or deleted."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))
