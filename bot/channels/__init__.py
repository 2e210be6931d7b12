"""Messaging channels (Zalo OA, ...) that feed citizen messages into the gateway."""
