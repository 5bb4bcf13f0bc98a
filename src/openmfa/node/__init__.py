"""The node's services: what the CLI and the SDK both call (store + core, no transport)."""
