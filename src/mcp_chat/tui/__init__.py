"""The terminal chat client: a Textual app that is itself an MCP client."""
