"""Facts of the external contract (../shared/CONTRACT.md) that every service checks.

Ids (`user_id`, `order_id`, `charge_id`, `transfer_id`, ...) are 1-64 characters of
`[A-Za-z0-9_.:-]`; amounts are whole won from MIN_AMOUNT to MAX_AMOUNT.
"""

ID_MAX_LENGTH = 64
ID_PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{ID_MAX_LENGTH}}}$"
MIN_AMOUNT = 1
MAX_AMOUNT = 100_000_000
