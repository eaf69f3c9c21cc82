"""Tests of notifications: what the engine notes, and how it is delivered."""
