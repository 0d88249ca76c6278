"""Tooling around the clearinghouse: exports, reports, schemas and shared console helpers.

The tools read the core (records, events, stores) and never the reverse: nothing in
``clearinghouse`` outside this package imports from it at module level, and no tool
ever writes consensus state.
"""
