"""The web page for people, and the JSON endpoints it talks to."""
