"""Tests of the pure functional core against closed forms, scipy and naive loops."""
