"""Wire layer: actions, canonical encoding, signatures, blocks and the log file.

Nothing here knows about state; ``state`` and ``clearinghouse`` build on it.
"""
