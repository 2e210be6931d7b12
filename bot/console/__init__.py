"""The operator console: accounts, conversations, the NLU inbox, models, handover, dashboard."""
