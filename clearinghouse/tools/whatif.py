"""Placeholder, replaced below."""


def add_whatif_command(sub):
    return None
