"""Tests of jobs/engine/: the state changes, the dispatcher, pacing and the Gemini door."""
