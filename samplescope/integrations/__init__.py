"""Built-in integrations, written with the public integration API only."""
