"""The settings ``callgate tune`` tries: every combination of the values given per name."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

MAX_COMBINATIONS = 256
"""More than this is a typo or a night's work; either way, ask for fewer."""


class GridError(ValueError):
    """A ``--try`` that cannot be used; the message quotes it."""


@dataclass(frozen=True, slots=True)
class Trial:
    """One combination: the values tried on top of the base settings, as NAME -> text."""

    values: dict[str, str]

    @property
    def label(self) -> str:
        """``SNR_START_NORMAL=7 SNR_STOP_NORMAL=4``, or ``(base)`` for no change."""
        return " ".join(f"{name}={value}" for name, value in self.values.items()) or "(base)"


def parse_tries(items: list[str]) -> dict[str, list[str]]:
    """``["SNR_START_NORMAL=7,8,9"]`` -> ``{"SNR_START_NORMAL": ["7", "8", "9"]}``.

    Names are upper-cased, as the settings spell them; a name given twice is an error,
    since the second would silently win.
    """
    axes: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().upper()
        options = [v.strip() for v in values.split(",")]
        if not sep or not name or not all(options):
            raise GridError(f"--try expects NAME=VALUE[,VALUE...], got {item!r}")
        if name in axes:
            raise GridError(f"--try names {name} twice; give all its values in one --try")
        axes[name] = list(dict.fromkeys(options))
    return axes


def trials(axes: dict[str, list[str]]) -> list[Trial]:
    """The base settings first, then every combination of the axes (in the order given)."""
    names = list(axes)
    count = 1
    for values in axes.values():
        count *= len(values)
    if count > MAX_COMBINATIONS:
        raise GridError(
            f"--try asks for {count} combinations, more than {MAX_COMBINATIONS}; "
            "try fewer values, or tune one pair of settings at a time"
        )
    combos = itertools.product(*axes.values()) if names else iter(())
    return [Trial({}), *(Trial(dict(zip(names, combo, strict=True))) for combo in combos)]
