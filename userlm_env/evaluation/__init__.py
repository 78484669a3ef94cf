"""Evaluation: Lost-in-Conversation scores for assistants, realism metrics for user simulators, reports."""
