"""Scenarios: a hand-written TOML description of a chain, compiled into a signed log and run.

The format is documented in ``docs/scenarios.md``. In short::

    name = "..."                 # optional
    accounts = ["alice", "bob"]  # or an [accounts] table: name = "initial deposit (USDC)"

    [chain]      chain_id, start, policy, insurance_fund, bridge, oracles, block_seconds
    [[market]]   name, sz_decimals, max_leverage, initial_price, taker_fee, maker_fee,
                 impact_notional, min_notional
    [[step]]     do = "deposit" | "withdraw" | "transfer" | "order" | "market_order" | "trigger"
                      | "cancel" | "modify" | "leverage" | "isolated_margin" | "oracle"
                      | "advance" | "block" | "expect"

Everything a human writes is in human units (USDC and base-asset decimals,
basis points, seconds) and converted exactly by ``units``; anything not
representable, any unknown key, market or account is an error naming the
step and the key. Accounts are the deterministic, INSECURE test keys of
``Signer.from_name``. Compilation is deterministic: the same file gives the
same log bytes and therefore the same roots.

Display and compile-time code only: nothing here is part of the transition.
"""
