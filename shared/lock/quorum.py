"""The lock on several independent Redis nodes (Redlock), with fencing tokens that only grow.

Each lock script runs on every node at once; its answers are combined into the answer one
node would give, so RedisLock, the watchdog, pub/sub and the local queue work unchanged:

- acquire / hand over: held when a majority took it within the validity time (lease minus
  elapsed minus clock drift); otherwise what was taken is given back at once. A takeover
  of a dead holder's lock is an acquire: each node deletes the lock only if that holder
  still holds it there, and a majority must grant the new hold. The token
  is the largest of the acquiring nodes' counters, and every node of the majority has its
  counter raised to it before the lease is used: any later majority shares a node with
  this one, so any later holder's token is larger.
- renew: renewed when a majority renewed; lost when a majority no longer has it.
- release, force release: on every node that answers.

A majority that cannot be reached raises QuorumUnavailable, a redis ConnectionError, so
callers tell "the lock service is down" from "the lock is busy" exactly as with one node.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from shared.infra_errors import DEPENDENCY_ERRORS
from shared.lock import scripts
from shared.lock.janitor import Drop
from shared.lock.pubsub import LockSubscriptions, Subscription

RAISE_FENCE = """
-- KEYS[1] fence counter; ARGV[1] token, ARGV[2] fence ttl ms. The counter becomes at least token.
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('set', KEYS[1], ARGV[1])
end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
"""

SPLIT_BACKOFF_SECONDS = 0.02  # random pause after a split vote, so rivals stop colliding


class QuorumUnavailable(redis.exceptions.ConnectionError):
    """Fewer than a majority of the lock nodes answered."""


class NodeUnreachable(redis.exceptions.ConnectionError):
    """One node did not answer in time, or its connection was found closed."""


Answer = Any  # what a node's script returned, or the exception it raised
Late = dict[int, "asyncio.Task[Answer]"]  # node index -> its script, still running


class _Script:
    """One script on every node. A node that has not answered within the timeout counts as
    down for this decision, but its script is not cancelled: it may already have run on the
    node (a slow node, one just restarted), so what it did must still be known and, for an
    acquisition that failed, undone; otherwise the node would keep a hold nobody renews or
    releases for a whole lease."""

    def __init__(self, nodes: Sequence[Redis], source: str) -> None:
        self.per_node = [node.register_script(source) for node in nodes]

    async def run(
        self, keys: list[str], args: list[Any], timeout: float, nodes: Sequence[int] | None = None
    ) -> tuple[list[Answer], Late]:
        chosen = range(len(self.per_node)) if nodes is None else nodes
        tasks = {i: asyncio.ensure_future(_call(self.per_node[i], keys, args)) for i in chosen}
        await asyncio.wait(tasks.values(), timeout=timeout)
        answers: list[Answer] = [NodeUnreachable("not asked")] * len(self.per_node)
        late: Late = {}
        for i, task in tasks.items():
            if task.done():
                answers[i] = task.result()
            else:
                answers[i] = NodeUnreachable(f"lock node {i + 1}: no answer within {timeout}s")
                late[i] = task
        return answers, late


async def _call(script: Any, keys: list[str], args: list[Any]) -> Answer:
    """A node's answer, or the error that stands for it (never raised)."""
    try:
        return await script(keys=keys, args=args)
    except DEPENDENCY_ERRORS as exc:
        return exc
    except RuntimeError as exc:  # uvloop: a write on a connection the node has closed
        return NodeUnreachable(repr(exc))
    except redis.exceptions.RedisError as exc:
        return exc  # a script error: _failed raises it


def _granted(answer: Answer) -> bool:
    """An acquire's {1, ...} or a hand-over's non-zero token."""
    return bool(int(answer[0]) if isinstance(answer, list) else int(answer))


def _failed(answer: Answer) -> bool:
    if isinstance(answer, BaseException) and not isinstance(answer, DEPENDENCY_ERRORS):
        raise answer  # a bug (a script error), not an unreachable node
    return isinstance(answer, BaseException)


class QuorumScripts:
    """The lock's scripts over N nodes, each method answering like the one-node script."""

    def __init__(
        self,
        nodes: Sequence[Redis],
        *,
        node_timeout: float = 0.5,
        drift_factor: float = 0.01,
    ) -> None:
        self.nodes = list(nodes)
        self.quorum = len(self.nodes) // 2 + 1
        self.node_timeout = node_timeout
        self.drift_factor = drift_factor
        self._acquire = _Script(nodes, scripts.ACQUIRE)
        self._release = _Script(nodes, scripts.RELEASE)
        self._renew = _Script(nodes, scripts.RENEW)
        self._force_release = _Script(nodes, scripts.FORCE_RELEASE)
        self._hand_over = _Script(nodes, scripts.HAND_OVER)
        self._drop = _Script(nodes, scripts.DROP)
        self._raise_fence = _Script(nodes, RAISE_FENCE)
        self._exists = _Script(nodes, "return redis.call('exists', KEYS[1])")
        self._settling: set[asyncio.Task[None]] = set()  # late answers being waited for

    def valid_until(self, started: float, lease_ms: int) -> float:
        """When a lease taken or renewed at `started` (monotonic) stops being safe to use."""
        drift_ms = lease_ms * self.drift_factor + 2
        return started + (lease_ms - drift_ms) / 1000

    def _reachable(self, answers: list[Answer]) -> list[Answer]:
        reached = [a for a in answers if not _failed(a)]
        if len(reached) < self.quorum:
            raise QuorumUnavailable(
                f"{len(reached)} of {len(self.nodes)} lock nodes answered, {self.quorum} needed"
            )
        return reached

    async def _run(self, script: _Script, keys: list[str], args: list[Any]) -> list[Answer]:
        """The answers in time; a late one is only waited for (nothing to undo)."""
        answers, late = await script.run(keys, args, self.node_timeout)
        self._settle(late, lambda node, answer: None)
        return answers

    def _settle(self, late: Late, then: Callable[[int, Answer], Awaitable[None] | None]) -> None:
        """Wait in the background for the nodes that answered late, and act on each answer."""

        async def one(node: int, task: "asyncio.Task[Answer]") -> None:
            step = then(node, await task)
            if step is not None:
                await step

        for node, task in late.items():
            settling = asyncio.create_task(one(node, task), name=f"lock-node-{node + 1}-late")
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)

    def _give_back_late(self, key: str, owner: str, lease_ms: int, late: Late) -> None:
        """A failed acquisition's late grants are given back as they arrive."""

        def undo(node: int, answer: Answer) -> Awaitable[None] | None:
            if _failed(answer) or not _granted(answer):
                return None
            return self._give_back(key, owner, lease_ms, {node: 0})

        self._settle(late, undo)

    async def close(self) -> None:
        """Wait for the late answers still coming (each ends by its socket timeout)."""
        await asyncio.gather(*self._settling, return_exceptions=True)

    async def acquire(self, keys: list[str], args: list[Any]) -> list[Any]:
        lease_ms, owner, fence_ttl = int(args[0]), args[1], args[2]
        started = time.monotonic()
        answers, late = await self._acquire.run(keys, args, self.node_timeout)
        granted = {i: a for i, a in enumerate(answers) if not _failed(a) and int(a[0])}
        tokens = {i: int(a[1]) for i, a in granted.items()}
        if len(tokens) >= self.quorum and await self._fenced(
            keys[1], tokens, fence_ttl, started, lease_ms
        ):
            self._settle(late, lambda node, answer: None)  # a late grant is one more holder
            return [1, max(tokens.values()), max(int(a[2]) for a in granted.values())]
        await self._give_back(keys[0], owner, lease_ms, tokens)
        self._give_back_late(keys[0], owner, lease_ms, late)
        reached = self._reachable(answers)
        refused = [a for a in reached if not int(a[0])]
        ttls = [int(a[1]) for a in refused if int(a[1]) >= 0]
        holders = [a[2] for a in refused if a[2]]
        if tokens:  # a split vote: pause a moment so two rivals do not collide forever
            await asyncio.sleep(random.uniform(0, SPLIT_BACKOFF_SECONDS))
        return [0, min(ttls) if ttls else 0, holders[0] if holders else b""]

    async def hand_over(
        self, keys: list[str], args: list[Any], missed: Callable[[int], None] | None = None
    ) -> int:
        """The successor's token, 0 if not handed; `missed(node)` for each node that may
        keep the previous owner's hold although the hand-over succeeded."""
        lease_ms, next_owner, fence_ttl = int(args[0]), args[2], args[3]
        started = time.monotonic()
        answers, late = await self._hand_over.run(keys, args, self.node_timeout)
        tokens = {i: int(a) for i, a in enumerate(answers) if not _failed(a) and int(a)}
        if len(tokens) >= self.quorum and await self._fenced(
            keys[1], tokens, fence_ttl, started, lease_ms
        ):
            if missed is not None:
                self._report_missed(answers, late, missed)
            else:
                self._settle(late, lambda node, answer: None)
            return max(tokens.values())
        await self._give_back(keys[0], next_owner, lease_ms, tokens)
        self._give_back_late(keys[0], next_owner, lease_ms, late)
        return 0

    async def _fenced(
        self, fence_key: str, tokens: dict[int, int], fence_ttl: int, started: float, lease_ms: int
    ) -> bool:
        """Raise the counters of the acquiring nodes to the token; True if a majority holds
        both the lock and a counter at least the token, within the validity time."""
        token = max(tokens.values())
        behind = [i for i, t in tokens.items() if t < token]
        fenced = len(tokens) - len(behind)
        if behind:
            answers, late = await self._raise_fence.run(
                [fence_key], [token, fence_ttl], self.node_timeout, behind
            )
            self._settle(late, lambda node, answer: None)
            fenced += sum(1 for i in behind if not _failed(answers[i]))
        loop_now = time.monotonic()
        return fenced >= self.quorum and loop_now < self.valid_until(started, lease_ms)

    async def _give_back(self, key: str, owner: str, lease_ms: int, taken: dict[int, int]) -> None:
        """Undo a failed acquisition on the nodes that granted it (one hold each)."""
        if not taken:
            return
        keys, args = [key, f"{key}:channel"], [lease_ms, owner]
        answers, late = await self._release.run(keys, args, self.node_timeout, list(taken))
        self._settle(late, lambda node, answer: None)

    async def release(self, keys: list[str], args: list[Any]) -> int:
        """1 released somewhere, 0 still held (re-entered), -1 not the owner anywhere."""
        reached = [a for a in await self._run(self._release, keys, args) if not _failed(a)]
        if not reached:
            raise QuorumUnavailable("no lock node answered the release")
        return max(int(a) for a in reached)

    async def finish(self, keys: list[str], args: list[Any], missed: Callable[[int], None]) -> int:
        """A hold's last release (DROP) on every node: 1 released somewhere, -1 not the
        owner anywhere; `missed(node)` for each node that did not run it, now or late."""
        answers, late = await self._drop.run(keys, args, self.node_timeout)
        self._report_missed(answers, late, missed)
        reached = [a for i, a in enumerate(answers) if i not in late and not _failed(a)]
        if not reached:
            raise QuorumUnavailable("no lock node answered the release")
        return max(int(a) for a in reached)

    def _report_missed(
        self, answers: list[Answer], late: Late, missed: Callable[[int], None]
    ) -> None:
        for node, answer in enumerate(answers):
            if node not in late and _failed(answer):
                missed(node)

        def late_one(node: int, answer: Answer) -> None:
            if _failed(answer):
                missed(node)

        self._settle(late, late_one)

    async def drop(self, node: int, drop: Drop) -> None:
        """Run a missed last release on one node; raises if the node does not answer."""
        keys, args = [drop.key, drop.channel], [drop.owner]
        answers, late = await self._drop.run(keys, args, self.node_timeout, [node])
        self._settle(late, lambda node, answer: None)
        if _failed(answers[node]):
            raise answers[node]

    async def renew(self, keys: list[str], args: list[Any]) -> int:
        answers = await self._run(self._renew, keys, args)
        renewed = sum(1 for a in answers if not _failed(a) and int(a))
        if renewed >= self.quorum:
            return 1
        lost = sum(1 for a in answers if not _failed(a) and not int(a))
        if lost > len(self.nodes) - self.quorum:
            return 0
        raise QuorumUnavailable(f"lease renewed on {renewed} lock nodes, {self.quorum} needed")

    async def force_release(self, keys: list[str]) -> int:
        reached = self._reachable(await self._run(self._force_release, keys, []))
        return max(int(a) for a in reached)

    async def exists(self, key: str) -> bool:
        answers = await self._run(self._exists, [key], [])
        return sum(1 for a in self._reachable(answers) if int(a)) >= self.quorum


class FirstLiveSubscriptions:
    """Wake-ups from the first lock node that accepts a subscription. Every node publishes
    each release, so one live node is enough; when it fails its waiters are woken to retry."""

    def __init__(self, nodes: Sequence[Redis]) -> None:
        self.per_node = [LockSubscriptions(node) for node in nodes]
        self._owner: dict[int, LockSubscriptions] = {}

    def join_confirmed(self, channel: str) -> Subscription | None:
        for subscriptions in self.per_node:
            entry = subscriptions.join_confirmed(channel)
            if entry is not None:
                self._owner[id(entry)] = subscriptions
                return entry
        return None

    async def join(self, channel: str) -> Subscription:
        failure: BaseException | None = None
        for subscriptions in self.per_node:
            try:
                entry = await subscriptions.join(channel)
            except DEPENDENCY_ERRORS as exc:
                failure = exc
                continue
            self._owner[id(entry)] = subscriptions
            return entry
        raise QuorumUnavailable(f"no lock node accepts subscriptions: {failure!r}")

    async def leave(self, entry: Subscription) -> None:
        subscriptions = self._owner[id(entry)]
        if entry.refs <= 1:
            del self._owner[id(entry)]
        await subscriptions.leave(entry)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.per_node))
