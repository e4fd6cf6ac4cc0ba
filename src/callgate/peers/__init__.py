"""Test peers: stand-ins for the other side of callgate's connections (Twilio, ...)."""
