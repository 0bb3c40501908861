"""The bank gateway: the external bank behind a circuit breaker; fake_bank/ fakes the bank."""
