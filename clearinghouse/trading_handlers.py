"""Registers the trading, oracle and end-of-block modules with the transition.

Importing this module wires every action handler and end-of-block step; it
exists so the transition core does not import trading code directly.
"""
