"""The fallback call path: local or cloud speech-to-text, an agent, and text-to-speech."""
