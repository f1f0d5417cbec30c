"""A real cluster: Debian's nginx in front of two daphne workers on PostgreSQL and Redis.

Eight users speak real recordings through nginx (token auth, one conversation each), spread
over both workers by nginx's round robin.  Two things an administrator does to such a cluster:

- **A rolling restart** (SIGTERM worker A, wait for it to exit, start it again, then B) loses no
  turn: the stopping worker's sessions are told, each utterance in progress is finalized and
  stored, the clients get ``SHUTTING_DOWN`` and 1012, and they resume their conversation by id
  through nginx on whichever worker is up; the other worker's sessions are not disturbed.
- **kill -9 of one worker** mid-conversation: nginx drops its clients' sockets (1006), they
  reconnect through nginx to the other worker and resume, and every turn whose
  ``final_transcript`` was sent is stored exactly once (the journal both workers share on this
  host is replayed by the survivor).  What is lost is what the killed worker held only in
  memory: the audio of the utterance in flight at the kill (heard, ``speech_started`` sent, no
  final yet) and the reply being generated or spoken.  A client that wants those words kept says
  them again; the test counts at most one such utterance per client of the killed worker.

It needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), Redis on 127.0.0.1:6379 and
nginx, and uses them whatever DATABASE_URL and REDIS_URL say: a database ``parley_cluster`` and
Redis database 9 of its own, both emptied afterwards.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest

from tests.support.cluster import Cluster, unavailable_reason
from tests.support.cluster_client import SpeakingClient

_REASON = unavailable_reason()
pytestmark = [pytest.mark.skipif(_REASON is not None, reason=_REASON or ""), pytest.mark.timeout(240)]

CLIENTS = 8
CLIPS = [
    "lj_LJ001-0013",
    "ps_goforward",
    "librivox_sns01_0880",
    "librivox_sns01_0930",
    "ps_cards_005",
    "lj_LJ001-0011",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(work_dir)
    try:
        cluster.start()
        cluster.tokens = [cluster.create_token(f"user{i}") for i in range(CLIENTS)]
        yield cluster
    finally:
        cluster.stop()


def _clients(cluster: Cluster) -> list[SpeakingClient]:
    return [
        SpeakingClient(cluster.ws_url, token, CLIPS[i % len(CLIPS) :] + CLIPS[: i % len(CLIPS)])
        for i, token in enumerate(cluster.tokens)
    ]


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _every_client_speaks_after(clients: list[SpeakingClient], moment: float, timeout: float = 40):
    """Wait until every client has had a final transcript for an utterance ended after ``moment``."""
    try:
        await _until(
            lambda: all(c.finals_since(moment) for c in clients), timeout, "a final for every client"
        )
    except AssertionError:
        states = "\n".join(c.describe() for c in clients if not c.finals_since(moment))
        raise AssertionError(
            f"at {time.monotonic():.1f}, clients without a final after {moment:.1f}:\n{states}"
        ) from None


def _assert_stored_exactly_once(cluster: Cluster, clients: list[SpeakingClient], timeout: float = 30) -> None:
    """Every final a client received is a stored turn of that client's conversation, stored once."""
    expected = {final["id"]: c.conversation_id for c in clients for final in c.finals}
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.database.query(
            "select turn_id::text, conversation_id::text from conversations_turn"
            " where turn_id::text = any(%s)",
            list(expected),
        )
        stored = {turn_id: conversation for turn_id, conversation in rows}
        if len(stored) == len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # a killed worker's journal may still be being replayed
    assert len(rows) == len(stored), "a turn was stored twice"
    assert stored == expected, f"{len(expected) - len(stored)} of {len(expected)} finals are not stored"


def _assert_no_reply_left_pending(
    cluster: Cluster, clients: list[SpeakingClient], timeout: float = 15, before: float | None = None
) -> None:
    """No turn of these clients (begun ``before``, epoch seconds, if given) is still marked "reply in
    progress": once their sessions have ended, or, for the turns of sessions a kill ended, once
    their clients have resumed.

    A reply cut off by a kill is not finished by anyone: the replay of the killed session's journal,
    which the resumed session starts, marks it cancelled (``replay.py``), and so does the
    conversation's next session ending (``services.end_conversation``). The kill below comes
    mid-utterance, so a reply is in progress only at times; test_journal_crash.py kills a worker
    mid-reply every time.
    """
    sql = (
        "select conversation_id::text, turn_id::text from conversations_turn"
        " where status = 'pending' and conversation_id::text = any(%s)"
    )
    params: list[object] = [[c.conversation_id for c in clients]]
    if before is not None:
        sql += " and created_at < to_timestamp(%s)"
        params.append(before)
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.database.query(sql, *params)
        if not rows or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the last sessions may still be closing
    assert not rows, rows


def _metrics_of(worker_address: str) -> str:
    """One worker's /metrics, read on loopback as Prometheus on the host does."""
    with urllib.request.urlopen(f"http://{worker_address}/metrics", timeout=5) as response:
        return response.read().decode()


def _status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _sessions_active(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("voice_sessions_active") and not line.startswith("#")
    )


async def test_cluster_rolling_restart_loses_no_turn(cluster) -> None:
    clients = _clients(cluster)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client.run(stop)) for client in clients]
    try:
        await _every_client_speaks_after(clients, 0, timeout=60)
        upstreams = {client.current.upstream for client in clients}
        assert upstreams == {w.address for w in cluster.workers}, f"sessions not spread: {upstreams}"

        # One worker's /metrics sums both workers' (a multiprocess directory they share).
        metrics = await asyncio.to_thread(_metrics_of, cluster.workers[0].address)
        assert _sessions_active(metrics) == CLIENTS, metrics
        assert await asyncio.to_thread(_status_of, f"{cluster.http_url}/metrics") == 404

        first, second = cluster.workers
        on_second = [client for client in clients if client.current.upstream == second.address]
        for worker in (first, second):
            restart_began = time.monotonic()
            # Blocking calls run in a thread: the clients keep streaming in real time meanwhile.
            assert await asyncio.to_thread(cluster.restart, worker) == 0
            await _every_client_speaks_after(clients, restart_began)
            if worker is first:  # only the stopping worker's sessions were told to move
                assert all(len(client.connections) == 1 for client in on_second), [
                    client.describe() for client in on_second
                ]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    for client in clients:
        assert not [u for u in client.utterances if u.lost], client.describe()
        for connection in client.connections[:-1]:  # every connection but the last ended by a restart
            assert connection.close_code == 1012, connection
            assert connection.errors[-1:] == ["SHUTTING_DOWN"], connection
        assert all(c.resumed and c.conversation_id == client.conversation_id for c in client.connections[1:])
    _assert_stored_exactly_once(cluster, clients)
    _assert_no_reply_left_pending(cluster, clients)


async def test_cluster_kill_9_keeps_every_final_sent(cluster) -> None:
    clients = _clients(cluster)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client.run(stop)) for client in clients]
    victim = cluster.workers[0]
    try:
        await _every_client_speaks_after(clients, 0, timeout=60)
        # Kill while its clients are mid-utterance: the server has heard speech, no final yet.
        on_victim = [c for c in clients if c.current.upstream == victim.address]
        assert on_victim, "no session on the worker to kill"
        await _until(
            lambda: any(c.utterances[-1].heard and not c.utterances[-1].finals for c in on_victim),
            20,
            "an utterance in flight on the victim",
        )
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.kill()
        await _every_client_speaks_after(clients, killed_at)
        await asyncio.to_thread(_assert_no_reply_left_pending, cluster, on_victim, before=killed_wall)
        victim.start()
        await asyncio.to_thread(victim.wait_ready)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    survivors = [c for c in clients if c not in on_victim]
    for client in survivors:
        assert len(client.connections) == 1 and not [u for u in client.utterances if u.lost]
    for client in on_victim:
        dropped = [c for c in client.connections if c.upstream == victim.address and c.opened < killed_at]
        assert dropped and dropped[0].close_code == 1006, client.connections
        resumed = client.connections[client.connections.index(dropped[0]) + 1 :]
        assert resumed and all(c.resumed and c.conversation_id == client.conversation_id for c in resumed)
        lost = [u for u in client.utterances if u.lost]
        assert len(lost) <= 1 and all(u.connection is dropped[0] for u in lost), lost
    _assert_stored_exactly_once(cluster, clients)
    _assert_no_reply_left_pending(cluster, clients)
