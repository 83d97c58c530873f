"""The IVR prompt set: 8 kHz WAVs per language, the texts they were made from, and the script
that makes them (``generate.py``). Loaded by :mod:`rtp.prompts`; see README.md."""
