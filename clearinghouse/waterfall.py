"""The liquidation waterfall, in its fixed end-of-block order (RULEBOOK §7, docs/protocol.md).

    40 liquidation   trigger at mark; market liquidation into the book
                     (liquidation.py), insurance fund cover (insurance_fund.py),
                     backstop takeover (backstop.py)
    50 adl           auto-deleveraging of every unit still below zero (adl.py)

Prices (10), triggers (20) and funding (30) run before, so liquidation sees
this block's mark prices and funding.
"""

from .adl import run_adl
from .end_of_block import register_step
from .liquidation import run_liquidations

register_step("liquidation", run_liquidations, order=40)
register_step("adl", run_adl, order=50)
