"""Scoring and evaluation: applying a stored model to a table, segment by segment."""
