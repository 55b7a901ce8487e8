"""The script's handler package (the runtime imports handler.handler)."""
