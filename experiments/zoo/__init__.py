"""A zoo of small networks trained offline, for the survey study; see train.py."""
