"""`python -m mcp_chat` runs the command line."""

from mcp_chat.cli import main

main()
