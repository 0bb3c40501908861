"""The balance this process last read or wrote for a wallet, kept for its next lock holder.

A payment read its wallet's balance (one database round trip) though, most of the time, the
previous holder of that wallet's lock was this very process, which had just written that
balance. The lock's fencing token says when that is so: each acquisition or hand-over of a
wallet's lock takes the next token, so a balance seen under token T is still the wallet's
when this process holds the lock under T (re-entry) or T + 1 (nobody acquired it between).

That is a hint, not a proof: a writer that holds no token (the row lock used while Redis is
down) can change the balance behind it. Two rules keep every answer right anyway:

- every balance write is a compare-and-set on the balance it read (repository.py): a write
  from a stale balance changes no row, the transaction stops before its COMMIT, and the
  unit of work raises ConcurrentUpdate, forgets the wallet here, and the use case runs again
  from a fresh read;
- a debit is refused (402) only from a fresh read: a cached balance too small to cover the
  amount is read again (`covering`).
"""

from collections import OrderedDict


class BalanceCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[int, int]] = OrderedDict()  # user -> (balance, token)
        self.hits = 0
        self.misses = 0

    def get(self, user_id: str, token: int, covering: int = 0) -> int | None:
        """The balance seen under `token` or the one before it, if it covers `covering`."""
        entry = self._entries.get(user_id)
        if entry is None or entry[1] not in (token, token - 1) or entry[0] < covering:
            self.misses += 1
            return None
        self._entries.move_to_end(user_id)
        self.hits += 1
        return entry[0]

    def put(self, user_id: str, balance: int, token: int) -> None:
        self._entries[user_id] = (balance, token)
        self._entries.move_to_end(user_id)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, user_id: str) -> None:
        self._entries.pop(user_id, None)
