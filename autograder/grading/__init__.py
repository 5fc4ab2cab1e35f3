"""Grading that holds: preflight, isolation, a fresh-process re-check, parallel workers and one report row each."""
