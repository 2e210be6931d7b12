"""Zalo Official Account (OA API v3) channel: webhook verification, events, replies."""
