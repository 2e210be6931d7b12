"""Custom Rasa NLU components for Vietnamese (tokenizer, catalog matcher)."""
