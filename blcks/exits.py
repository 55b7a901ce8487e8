"""Exit codes of the servers the SDK runs (``blcks.serve``, ``blcks.forkserver``'s
children), which trek reads to say why a script did not start."""

IMPORT_FAILED = 3  # the handler failed to import
CANNOT_LISTEN = 4  # the port is taken, or cannot be listened on
UNUSABLE_CHILD = 5  # a fork server's child could not take the script's identity
