"""A three-node RabbitMQ cluster (Deploy/local/cluster.sh) that loses a node under load and gets it back.
Switchboard's roles name all three nodes in broker_url and declare quorum queues; the ESB publishes
both sides at once through a node that stays up."""
import glob
import os
import subprocess
import time
import uuid

import pika
import pytest

from conftest import (BOTH_SIDES_RULES, ESB, REPO, Switchboard, assert_each_once_in_order, http_get,
                      publish_sides, take_unique)

CLUSTER = os.path.join(REPO, "Deploy", "local", "cluster.sh")

# Three broker nodes of its own next to the local one: not beside the parallel tests; beside the memory alarm
# tests (an alarm of the local node, which is not in this cluster).
pytestmark = [pytest.mark.serial, pytest.mark.xdist_group("cluster")]


def cluster(*args, timeout=300):
    r = subprocess.run(["bash", CLUSTER, *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"cluster.sh {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def queue_nodes(vhost):
    """Each queue's node (a classic queue's process; a quorum queue's leader)."""
    out = cluster("ctl", "1", "list_queues", "-q", "-p", vhost, "name", "pid", "leader")
    nodes = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            where = parts[2] if parts[2] not in ("", "''") else parts[1]
            nodes[parts[0]] = next((n for n in ("sb-node-1@localhost", "sb-node-2@localhost", "sb-node-3@localhost")
                                    if n in where), where)
    return nodes


def node_log_tail(n, lines=60):
    folder = os.path.join(REPO, ".rabbitmq-cluster", f"node{n}", "log")
    logs = sorted(glob.glob(os.path.join(folder, "*.log")), key=os.path.getmtime) if os.path.isdir(folder) else []
    if not logs:
        return f"(no log in {folder})"
    with open(logs[-1], errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def running_nodes():
    out = cluster("ctl", "1", "eval", "rabbit_nodes:all_running().")
    return {n for n in ("sb-node-1@localhost", "sb-node-2@localhost", "sb-node-3@localhost") if n in out}


@pytest.fixture(scope="module")
def cluster_vhost():
    cluster("start")
    name = "sb-cluster-" + uuid.uuid4().hex[:8]
    cluster("ctl", "1", "add_vhost", name)
    cluster("ctl", "1", "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    cluster("start-node", "2")  # whatever a failed test left behind
    cluster("ctl", "1", "delete_vhost", name)
    # Stopped always: three nodes' memory and CPU for the tests after this one, and a cluster left running
    # would be another checkout's the next time (cluster.sh refuses those).
    cluster("stop")


def test_the_fleet_loses_a_broker_node_under_load_and_gets_it_back(cluster_vhost):
    vhost = cluster_vhost
    url = cluster("url", vhost).strip()
    assert url.count(",") == 2
    env = {"SB_BROKER_URL": url, "SB_QUEUE_TYPE": "quorum", "SB_MANAGEMENT_URL": "http://localhost:15681",
           "SB_HEARTBEAT_SECONDS": "5"}
    # The store's request queues are quorum queues in quorum mode, led by the node that declared them first.
    # Put their leaders on node 2, the one to stop, whichever node the store's own connections land on:
    # another node takes over and the store goes on consuming them.
    node2 = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@localhost:5682/{vhost}"))
    for q in ("sb.store", "sb.store.members"):
        node2.channel().queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    node2.close()
    assert {q: n for q, n in queue_nodes(vhost).items() if q.startswith("sb.store")} == {
        "sb.store": "sb-node-2@localhost", "sb.store.members": "sb-node-2@localhost"}
    roles = [Switchboard(vhost, extra_config=BOTH_SIDES_RULES, args=args, env=env, consumers=1)
             for args in (["store"], ["intake"], ["intake"], ["worker", "--threads", "2"])]
    for p in roles:
        p.start(timeout=60)
    # The ESB of both sides publishes and consumes through node 1, which stays up.
    esb_url = f"amqp://guest:guest@localhost:5681/{vhost}"
    esb = ESB(vhost, url=esb_url)
    try:
        queues = dict(line.split("\t")[:2] for line in cluster(
            "ctl", "1", "list_queues", "-q", "-p", vhost, "name", "type").splitlines() if "\t" in line)
        data = [q for q in queues if q.startswith(("sb.in.", "sb.out.", "sb.work.", "sb.delayq")) or q == "sb.parked"]
        assert len(data) >= 8 + 6 and all(queues[q] == "quorum" for q in data), queues
        # The processes' connections are spread over the nodes (each connection starts at the next node).
        conns = [line.split("\t", 2) for line in cluster(
            "ctl", "1", "list_connections", "-q", "vhost", "port", "client_properties").splitlines()]
        ports = {c[1] for c in conns if len(c) == 3 and c[0] == vhost and "switchboard" in c[2]}
        assert {"5682"} < ports, conns  # some on node 2 (the one to stop), some elsewhere

        tickets, rounds = 10, 40
        threads = publish_sides(vhost, tickets, range(rounds), pause=0.15, url=esb_url)
        time.sleep(2)
        assert all(th.is_alive() for th in threads)  # under load: both sides still publishing
        cluster("stop-node", "2")
        assert running_nodes() == {"sb-node-1@localhost", "sb-node-3@localhost"}
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads)
        to_vendor = take_unique(esb, "sb.out.vendor-x", tickets * rounds, timeout=120)
        to_customer = take_unique(esb, "sb.out.customer-a", tickets * rounds, timeout=120)
        assert_each_once_in_order(to_vendor, tickets, range(rounds))
        assert_each_once_in_order(to_customer, tickets, range(rounds))
        print(f"node 2 stopped under load: {len(to_vendor) + len(to_customer)} messages out for {2 * tickets * rounds}")
        # Every role found a live node by itself and is ready; none is connected to the stopped node.
        for p in roles:
            assert p.proc.poll() is None, p.output()
            deadline = time.time() + 30
            while p.ready()[0] != 200 and time.time() < deadline:
                time.sleep(0.5)
            assert p.ready()[0] == 200, p.ready()
        assert any("reconnected and consuming" in p.output() for p in roles)
        # The store's queues are led by a live node now. (That the store consumes them is shown by every
        # update above and below being applied; `list_queues consumers` reads 0 for quorum queues whose
        # leader moved, on 3.10.8, even for inbound queues that were being consumed.)
        nodes = queue_nodes(vhost)
        assert nodes["sb.store"] != "sb-node-2@localhost" and nodes["sb.store.members"] != "sb-node-2@localhost", nodes

        # Node 2 comes back and rejoins; the traffic goes on through the cluster.
        started = cluster("start-node", "2")
        deadline = time.time() + 120
        while len(running_nodes()) < 3 and time.time() < deadline:
            time.sleep(1)
        # Seen once in CI under the whole suite's load: node 2 not back within 60 s. If it happens again,
        # say what the node said.
        assert len(running_nodes()) == 3, started + "\n" + node_log_tail(2)
        more = range(rounds, rounds + 10)
        for th in publish_sides(vhost, tickets, more, url=esb_url):
            th.join(60)
        assert_each_once_in_order(take_unique(esb, "sb.out.vendor-x", tickets * 10, 60), tickets, more)
        assert_each_once_in_order(take_unique(esb, "sb.out.customer-a", tickets * 10, 60), tickets, more)
        assert esb.depth("sb.parked") == 0 and roles[0].parked_count() == 0
        status, body = http_get(roles[0].metrics_url + "/metrics")
        assert status == 200 and "switchboard_broker_reconnects_total" in body
    finally:
        esb.close()
        codes = [p.stop() for p in reversed(roles)]
    # Every role exits cleanly after the node loss (a fresh-clone run once saw SIGSEGV here: a connection
    # failed inside RemoteStore's no-answer diagnosis went back to the pool and was used after free).
    assert all(c == 0 for c in codes), (codes, [p.output()[-3000:] for p in roles])
