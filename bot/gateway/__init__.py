"""HTTP gateway between citizens (web chat, channel adapters) and the Rasa server."""

from bot.gateway.app import create_app, run_gateway

__all__ = ["create_app", "run_gateway"]
