"""Tests of flexdash/: settings from the environment and production serving."""
