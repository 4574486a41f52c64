"""The MCP surface: thin translation between the protocol and the chat core."""
