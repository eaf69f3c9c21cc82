"""Tests of jobs/simulator/: the bundled stand-in for Gemini and its flexsim command."""
