"""Scoring the gate against an operator's labels, and sweeping settings over recordings.

Pure code: label files in, frame masks and scores out. ``callgate analyze --labels`` and
``callgate tune`` use it; so does the gate benchmark, so a recording scores the same in
the operator's hands as in ``docs/benchmarks.md``.
"""
