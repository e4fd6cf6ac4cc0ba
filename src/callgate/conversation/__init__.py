"""The conversation layer, sans-I/O: who said what, what the lead holds, and what to say.

- ``transcripts`` builds the call's turn-by-turn record from Realtime API events: caller
  fragments are merged, and agent replies are cut at a barge-in.
- ``loops`` spots the agent repeating itself, and the agent's own echo transcribed as the
  caller.
- ``form`` loads the lead form (TOML) and validates and normalizes field values: E.164
  phones, e-mail, ISO dates.
- ``extract`` finds names, phones, e-mails, dates, yes/no and goodbyes in one English or
  Hebrew utterance.
- ``agents`` is the agent interface (finished caller turns in; reply, field updates and
  end-of-call requests out) and the local form agent, which needs no cloud.

None of these reads a clock or does I/O; the server passes times in and acts on the
returned values.
"""
