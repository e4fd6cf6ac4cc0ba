"""The ending rules, frame by frame: smart hang-up, silence, duration."""

from __future__ import annotations

import pytest

from callgate.conversation.hangup import (
    HangUp,
    HangupAction,
    HangupOptions,
    HangupPolicy,
    PromptSilence,
)


def run(
    policy: HangupPolicy,
    frames: int,
    *,
    start_ms: int = 0,
    speaking: bool = False,
    busy: bool = False,
    unheard: int = 0,
) -> list[tuple[int, HangupAction]]:
    out = []
    for i in range(frames):
        t = start_ms + i * 20
        for action in policy.on_frame(
            t, caller_speaking=speaking, agent_busy=busy, unheard_ms=unheard
        ):
            out.append((t, action))
    return out


def test_requested_end_waits_until_the_goodbye_has_played() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=0))
    policy.request_end("lead_complete")
    # The closing line is still playing (marks keep coming): no hang-up.
    for k in range(100):
        assert not policy.on_frame(
            k * 20, caller_speaking=False, agent_busy=True, unheard_ms=2000 - k * 20
        )
    # The last mark came back: hang up on the next frame.
    assert policy.on_frame(2000, caller_speaking=False, agent_busy=False) == [
        HangUp("lead_complete")
    ]
    assert policy.on_frame(2020, caller_speaking=False, agent_busy=False) == []


def test_a_lost_mark_does_not_keep_the_line_open() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=0, grace_ms=1000))
    policy.request_end("caller_goodbye")
    actions = run(policy, 200, busy=True, unheard=400)  # marks stopped coming
    assert actions == [(1000, HangUp("caller_goodbye"))]


def test_grace_zero_waits_for_the_marks_until_the_maximum_duration() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=0, grace_ms=0, max_duration_ms=8000))
    policy.request_end("caller_goodbye")
    assert run(policy, 200, busy=True, unheard=400) == []  # 4 s without a mark: still up
    assert run(policy, 300, busy=True, unheard=400, start_ms=4000) == [
        (8000, HangUp("max_duration"))
    ]


def test_a_barge_in_cancels_the_pending_goodbye() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=0))
    policy.request_end("lead_complete")
    policy.on_barge_in()
    assert run(policy, 50, busy=False) == []
    assert policy.pending_reason is None


def test_silence_prompts_once_then_ends() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=1000))
    actions = run(policy, 49)
    assert actions == []
    actions = run(policy, 1, start_ms=980)
    assert actions == [(980, PromptSilence())]
    run(policy, 100, start_ms=1000, busy=True)  # the prompt plays
    actions = run(policy, 60, start_ms=3000)
    assert actions == [(3980, HangUp("silence"))]


def test_the_caller_answering_the_prompt_resets_the_silence_rule() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=1000))
    assert run(policy, 50) == [(980, PromptSilence())]
    run(policy, 10, start_ms=1000, speaking=True)
    assert not policy.prompted
    assert run(policy, 50, start_ms=1200) == [(2180, PromptSilence())]


def test_the_agent_speaking_is_not_silence() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=1000))
    assert run(policy, 500, busy=True) == []


def test_max_duration_ends_the_call_even_mid_speech() -> None:
    policy = HangupPolicy(HangupOptions(silence_timeout_ms=0, max_duration_ms=2000))
    assert run(policy, 150, speaking=True) == [(2000, HangUp("max_duration"))]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="grace_ms"):
        HangupOptions(grace_ms=-1)
