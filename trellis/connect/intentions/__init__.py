"""Intentions: the model the engine decides over, precedence, and the decision (pure)."""
