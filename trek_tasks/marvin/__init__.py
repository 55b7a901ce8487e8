"""The local Marvin: an embedded stand-in for the Marvin platform, and its pieces.

Import the module you need (``marvin.client``, ``marvin.target``, ``marvin.server``): the
package imports nothing, so a command that only calls a Marvin does not load the server's
store (SQLite) and inventory.
"""
