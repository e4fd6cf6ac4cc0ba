"""The turn controller stepped frame by frame with hand-made gate decisions."""

from __future__ import annotations

import numpy as np

from callgate.audio.decision import MAYBE_SPEECH, SILENCE, SPEECH, FrameDecision, GateState
from callgate.realtime.turns import (
    AppendAudio,
    CancelResponse,
    ClearPlayback,
    CommitInput,
    CreateResponse,
    PlayAudio,
    TruncateItem,
    TurnController,
    TurnOptions,
)

FRAME = 160


def frame(index: int, state: GateState, *, preroll: int = 0, onset: bool = False) -> FrameDecision:
    sent = state is SPEECH
    frames = (1 + preroll) if sent else 0
    return FrameDecision(
        index=index,
        t_ms=index * 20,
        state=state,
        sent=sent,
        preroll_frames=preroll,
        snr_db=20.0 if sent else 0.0,
        level_dbfs=-20.0,
        noise_dbfs=-50.0,
        music=False,
        gain_db=0.0,
        start_threshold_db=8.0,
        stop_threshold_db=5.0,
        voicing=0.8,
        reason="onset" if onset else ("speech" if sent else "below start"),
        audio=np.full(frames * FRAME, 1000, dtype=np.int16),
    )


def utterance(controller: TurnController, start: int, length: int) -> list[object]:
    """Three candidate frames, an onset with 12 frames of pre-roll, then speech."""
    actions: list[object] = []
    for i in range(start, start + 3):
        actions += controller.on_frame(frame(i, MAYBE_SPEECH))
    actions += controller.on_frame(frame(start + 3, SPEECH, preroll=12, onset=True))
    for i in range(start + 4, start + length):
        actions += controller.on_frame(frame(i, SPEECH))
    return actions


def silence(controller: TurnController, start: int, length: int) -> list[object]:
    actions: list[object] = []
    for i in range(start, start + length):
        actions += controller.on_frame(frame(i, SILENCE))
    return actions


def test_client_mode_commits_once_after_the_silence() -> None:
    c = TurnController(TurnOptions(mode="client", end_of_turn_silence_ms=600))
    actions = utterance(c, 0, 50)
    appended = [a for a in actions if isinstance(a, AppendAudio)]
    assert sum(len(a.pcmu) for a in appended) == (13 + 46) * FRAME
    assert not any(isinstance(a, CommitInput) for a in actions)
    # 29 silent frames (580 ms): not yet; the 30th (600 ms) ends the turn.
    assert silence(c, 50, 29) == []
    assert silence(c, 79, 1) == [CommitInput(), CreateResponse()]
    assert silence(c, 80, 100) == []  # nothing new to commit
    assert c.commits == 1


def test_trailing_fragment_before_the_commit_is_merged() -> None:
    c = TurnController(TurnOptions(end_of_turn_silence_ms=600))
    utterance(c, 0, 30)
    silence(c, 30, 20)  # 400 ms pause, shorter than the end of turn
    utterance(c, 50, 20)
    actions = silence(c, 70, 30)
    assert actions.count(CommitInput()) == 1
    assert c.commits == 1


def test_speech_after_the_commit_cancels_and_leads_to_one_answer() -> None:
    c = TurnController(TurnOptions(end_of_turn_silence_ms=600))
    utterance(c, 0, 30)
    silence(c, 30, 30)
    c.on_response_created()
    barge = utterance(c, 60, 10)
    assert CancelResponse() in barge
    assert not any(isinstance(a, (ClearPlayback, TruncateItem)) for a in barge)  # nothing played
    assert silence(c, 70, 30) == [CommitInput(), CreateResponse()]
    assert c.commits == 2


def test_barge_in_clears_cancels_and_truncates_to_what_was_heard() -> None:
    c = TurnController()
    utterance(c, 0, 20)
    silence(c, 20, 30)
    c.on_response_created()
    plays = c.on_agent_audio("item_1", 0, b"\x10" * 8 * 1000)  # one second of agent audio
    assert len(plays) == 50
    assert all(isinstance(p, PlayAudio) and len(p.pcmu) == FRAME for p in plays)
    # Twilio confirms 340 ms were played, then the caller talks over the agent.
    for p in plays[:17]:
        assert isinstance(p, PlayAudio)
        c.on_mark(p.mark)
    assert c.agent_audible
    barge = utterance(c, 50, 5)
    assert barge[:3] == [CancelResponse(), ClearPlayback(), TruncateItem("item_1", 0, 340)]
    assert isinstance(barge[3], AppendAudio)
    assert not c.agent_audible
    assert c.barge_ins[-1].heard_ms == 340


def test_no_barge_in_after_the_agent_finished_playing() -> None:
    c = TurnController()
    c.on_response_created()
    plays = c.on_agent_audio("item_1", 0, b"\x10" * 8 * 200)
    c.on_response_done()
    for p in plays:
        assert isinstance(p, PlayAudio)
        c.on_mark(p.mark)
    assert not c.agent_audible
    actions = utterance(c, 0, 10)
    assert all(isinstance(a, AppendAudio) for a in actions)
    assert c.barge_ins == []


def test_server_mode_pads_each_utterance_with_digital_silence_and_never_commits() -> None:
    c = TurnController(TurnOptions(mode="server_vad", padding_ms=500))
    utterance(c, 0, 20)
    actions = silence(c, 20, 100)
    pads = [a for a in actions if isinstance(a, AppendAudio)]
    assert len(pads) == 1
    assert pads[0].padding
    assert pads[0].pcmu == b"\xff" * 4000
    assert not any(isinstance(a, CommitInput) for a in actions)
