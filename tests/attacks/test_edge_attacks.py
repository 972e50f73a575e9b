"""The edge (deploy/edge/) attacked from loopback while a bystander with its own key is served:
made-up keys, a made-up key beside a real one, a connection flood and stalled bodies.
Each attack comes from loopback addresses of its own (harness/edge_attacks.py), in a
process of its own; the bystander (harness/bystander.py) sends from 127.0.0.1."""

from __future__ import annotations

import json
import re

import pytest

from harness.attack_report import ProcessUsage
from harness.bystander import Bystander, alive, assert_served, baseline
from harness.edge_attacks import attacker, connection_flood, spray_keys, stalled_bodies
from harness.processes import ROOT

pytestmark = pytest.mark.attack

NGINX_CONF = (ROOT / "deploy" / "edge" / "nginx.conf").read_text()
HEADER_TIMEOUT = int(re.search(r"client_header_timeout (\d+)s;", NGINX_CONF)[1])
BODY_TIMEOUT = int(re.search(r"client_body_timeout (\d+)s;", NGINX_CONF)[1])
SLACK_SECONDS = 1.5  # nginx's timers, and this machine's two busy cores
MiB = 1024 * 1024
# 300 MiB sent in 0.3 s (what loopback allows) keeps both cores busy for that long, and the
# bystander's one or two requests meanwhile wait 30-80 ms: a bandwidth flood, not the memory
# this attack is about. Sent in 1.5 s, the edge still holds every body at once.
UPLOAD_SECONDS = 1.5


def test_made_up_keys_meet_the_per_address_bound(attacked_stack, attack_report):
    """1,500 requests in 3 s, 16 at a time, each with a new X-API-Key (well-formed and malformed by turns)."""
    send, pids = attacked_stack.bystander_send(), attacked_stack.pids()
    alone = baseline(send)
    with attacker() as pool, Bystander(send) as bystander:
        usage = ProcessUsage(attacked_stack.processes())
        answers = pool.submit(spray_keys, attacked_stack.edge_port, "127.0.0.2", 1500, 3, 16).result(120)
    attacked = bystander.stats()
    attack_report.record("1,500 requests with a made-up key each, 16 at a time, one address", alone, attacked,
                         answers.counts, usage.stop())
    rate, burst = (attacked_stack.setting(f"EDGE_ADDRESS_RATE_{name}") for name in ("LIMIT", "BURST"))
    assert_served(alone, attacked)
    alive(pids)
    assert set(answers.counts) == {"401 unauthenticated", "429 rate_limited"}, answers.counts
    # Whatever the keys, the address's bucket bounds what reaches the gateway (to be refused there).
    assert answers.count("401") <= burst + 1 + rate * answers.seconds, answers
    assert answers.count("429") >= 1500 - (burst + 1 + rate * answers.seconds)
    assert "from its address" in answers.messages["429 rate_limited"]


def test_a_made_up_key_beside_a_real_bearer_key_stays_in_the_real_keys_bucket(attacked_stack, attack_report):
    """600 requests in 3 s, 16 at a time, with the attacker's real key as Bearer and a new X-API-Key each:
    the gateway reads the Bearer key when both are sent, and so does the edge's rate limit."""
    send, pids = attacked_stack.bystander_send(), attacked_stack.pids()
    alone = baseline(send)
    with attacker() as pool, Bystander(send) as bystander:
        usage = ProcessUsage(attacked_stack.processes())
        answers = pool.submit(spray_keys, attacked_stack.edge_port, "127.0.0.3", 600, 3, 16,
                              attacked_stack.attacker_key).result(120)
    attacked = bystander.stats()
    attack_report.record("600 requests with a real Bearer key and a made-up X-API-Key each", alone, attacked,
                         answers.counts, usage.stop())
    rate, burst = (attacked_stack.setting(name) for name in ("EDGE_RATE_LIMIT", "EDGE_RATE_BURST"))
    assert_served(alone, attacked)
    alive(pids)
    assert set(answers.counts) == {"200", "429 rate_limited"}, answers.counts
    # One bucket: its burst, then its rate (with a bucket per X-API-Key, up to the address's bound).
    assert burst <= answers.count("200") <= burst + 1 + rate * answers.seconds, answers


def test_a_connection_flood_from_one_address_is_refused_beyond_its_share(attacked_stack, attack_report):
    """500 connections that send nothing, then 150 that send a request's headers and never its body."""
    send, pids = attacked_stack.bystander_send(), attacked_stack.pids()
    limit = attacked_stack.setting("EDGE_MAX_CONNECTIONS_PER_ADDRESS")
    alone = baseline(send)
    with attacker() as pool, Bystander(send) as bystander:
        usage = ProcessUsage(attacked_stack.processes())
        flood = pool.submit(connection_flood, attacked_stack.edge_port, "127.0.0.4", 500, 150)
        idle, waiting = flood.result(60)
    attacked = bystander.stats()
    attack_report.record("500 idle connections, then 150 that never send their body, one address", alone, attacked,
                         {**{f"idle: {k}": v for k, v in idle.answers.items()},
                          **{f"body never sent: {k}": v for k, v in waiting.answers.items()}}, usage.stop())
    assert_served(alone, attacked)
    alive(pids)
    # Requests in progress: `limit` held (until the body timeout closes them), the others refused at once.
    assert waiting.answers == {"closed": limit, "429 too_many_connections": 150 - limit}, waiting.answers
    assert waiting.still_open == 0 and max(waiting.closed_after) <= BODY_TIMEOUT + SLACK_SECONDS
    # Connections without a request are not counted; the header timeout closes them, unanswered.
    assert idle.answers == {"closed": 500} and idle.still_open == 0
    assert HEADER_TIMEOUT - 0.5 <= min(idle.closed_after)
    assert max(idle.closed_after) <= HEADER_TIMEOUT + SLACK_SECONDS


def test_stalled_bodies_are_held_on_disk_not_in_the_edges_memory(attacked_stack, attack_report):
    """300 connections from 10 addresses, each announcing 1 MiB and sending all of it but the last byte,
    within the body timeout, so that the edge holds them all at once."""
    send, pids = attacked_stack.bystander_send(), attacked_stack.pids()
    sources = [f"127.0.0.{10 + index}" for index in range(10)]
    alone = baseline(send)
    with attacker() as pool, Bystander(send) as bystander:
        usage = ProcessUsage(attacked_stack.processes())
        stalled = pool.submit(stalled_bodies, attacked_stack.edge_port, sources, 30, MiB, UPLOAD_SECONDS,
                              attacked_stack.edge_pids()).result(60)
    attacked = bystander.stats()
    growth_mib = (stalled.rss_peak_kb - stalled.rss_before_kb) / 1024
    attack_report.record("300 bodies of 1 MiB stalled at their last byte, 10 addresses", alone, attacked, {
        **stalled.held.answers, "most bodies on disk at once": stalled.temp_files_peak,
        "edge RSS growth, MiB": round(growth_mib, 1)}, usage.stop())
    assert_served(alone, attacked)
    alive(pids)
    assert stalled.held.answers == {"closed": 300} and stalled.held.still_open == 0
    assert max(stalled.held.closed_after) <= BODY_TIMEOUT + SLACK_SECONDS
    # The edge held at least half of the 300 MiB at once, in files; its own memory grew by a fraction of it.
    assert stalled.temp_bytes_peak >= 150 * MiB
    assert growth_mib < 32, f"nginx grew by {growth_mib:.0f} MiB holding the bodies"
    # nginx ends a request that timed out without an answer; its log says 408.
    log = (attacked_stack.stack.run_dir / "edge.log").read_text()
    logged = [json.loads(line) for line in log.splitlines() if '"logger": "edge.access"' in line]
    timed_out = [line for line in logged if line["remote"] in sources and line["status"] == "408"]
    assert len(timed_out) == 300
