"""The audio core: codec, filters, noise floor, music, state machine, AGC and the gate.

Sans-I/O and self-contained: nothing here imports the rest of callgate, opens a socket or
reads a clock. Feed samples in, get :class:`FrameDecision` objects out.
"""

from callgate.audio.decision import FrameDecision, FrameGate, GateState
from callgate.audio.gate import SpeechGate
from callgate.audio.gate_options import GateOptions, Thresholds
from callgate.audio.legacy_vad import LegacyEnergyVad, LegacyVadOptions

__all__ = [
    "FrameDecision",
    "FrameGate",
    "GateOptions",
    "GateState",
    "LegacyEnergyVad",
    "LegacyVadOptions",
    "SpeechGate",
    "Thresholds",
]
