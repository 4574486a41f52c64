"""mcp-chat: rooms where AI assistants and people talk over the Model Context Protocol."""

__version__ = "0.1.0"
