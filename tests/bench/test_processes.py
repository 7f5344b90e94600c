"""What the bench reads about processes and starts beside the hub: CPU time of a group of
processes from /proc (including ones found while it runs), the PostgreSQL backends serving one
database, and the private Redis a run starts and stops."""

from __future__ import annotations

import asyncio
import os
import shutil

import asyncpg
import pytest

from bench.load.redis_server import answers_ping, start_redis, stop_redis
from bench.load.server import free_port, free_ports
from bench.load.system import (
    PAGE_TICKS,
    CpuGroup,
    CpuMark,
    ServerSampler,
    cpu_ms_between,
    postgres_backends,
)


def mark(at: float, last: dict[int, int], first=None, born=None) -> CpuMark:
    return CpuMark(at, dict(last), dict(first or last), dict(born or dict.fromkeys(last, 0)))


TICK_MS = 1000.0 / PAGE_TICKS


def test_cpu_between_two_marks_is_each_process_s_ticks_in_between():
    start = mark(100.0, {1: 50, 2: 10})
    end = mark(200.0, {1: 80, 2: 15}, first={1: 50, 2: 10})
    assert cpu_ms_between(start, end) == 35 * TICK_MS
    assert cpu_ms_between(start, end, pids=[2]) == 5 * TICK_MS


def test_a_process_born_in_the_window_counts_from_zero():
    start = mark(100.0, {1: 50})
    end = mark(200.0, {1: 60, 7: 12}, first={1: 50, 7: 4}, born={1: 0, 7: 150})
    assert cpu_ms_between(start, end) == (10 + 12) * TICK_MS


def test_an_older_process_first_seen_late_counts_from_its_first_sample():
    start = mark(100.0, {1: 50})
    end = mark(200.0, {1: 60, 7: 12}, first={1: 50, 7: 4}, born={1: 0, 7: 20})
    assert cpu_ms_between(start, end) == (10 + 8) * TICK_MS


def test_a_process_that_exited_keeps_what_it_was_last_seen_with():
    pids = [os.getpid(), 2**22 + 12345]  # the second does not exist
    group = CpuGroup("test", lambda: pids)
    first = group.mark()
    sum(i * i for i in range(200_000))
    second = group.mark()
    assert set(second.last) == {os.getpid()}
    assert cpu_ms_between(first, second) >= 0.0


def test_the_server_sampler_sums_its_nodes():
    sampler = ServerSampler.of([os.getpid(), os.getpid()])
    sampler.sample()
    total = sampler.sample()
    assert total is not None
    assert total.rss_bytes == sum(n.samples[-1].rss_bytes for n in sampler.nodes)


def test_free_ports_are_distinct():
    ports = free_ports(6)
    assert len(set(ports)) == 6


@pytest.mark.postgres
def test_the_backends_of_a_database_are_found_by_their_process_titles(postgres_url):
    database = postgres_url.rsplit("/", 1)[1]

    async def backend_pids_while_connected() -> tuple[int, list[int], list[int]]:
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            return pid, postgres_backends(database), postgres_backends(database + "_other")
        finally:
            await conn.close()

    pid, found, other = asyncio.run(backend_pids_while_connected())
    assert pid in found
    assert pid not in other


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_private_redis_answers_and_is_gone_once_stopped(tmp_path):
    port = free_port()
    redis = start_redis(port, "bench-test", tmp_path / "redis.log")
    try:
        assert answers_ping(port)
        assert redis.url == f"redis://127.0.0.1:{port}/0"
    finally:
        status = stop_redis(redis)
    assert status == 0
    assert not answers_ping(port)
    assert list(tmp_path.iterdir()) == [tmp_path / "redis.log"], "nothing persisted"
