"""Issue 18, 2: a browser's socket on one agent gets the events of changes made through the
other Apache node (another Galera node): every change is an event row, and every agent
pushes new rows to its own browsers, whichever node wrote them."""

import pytest

import test_agent          # tests/integration: make_guest, sio_client
from .conftest import SIM_NODE, wait_for


def bound_server(env, customer, via):
    """A running container on the Apaches' Proxmox and the customer's record of it, synced
    through Apache `via`; (record id, vmid), the record replicated to every node."""
    vmid = test_agent.make_guest(env.sim, node=SIM_NODE)
    v = env.api(via).create_vps(name=f"live-{vmid}", node=SIM_NODE, vmid=vmid, kind="lxc",
                                status="running", user_id=customer.id)
    env.replicated("SELECT COUNT(*) FROM vps WHERE id = ?", [v["id"]])
    return v["id"], vmid


@pytest.mark.parametrize("socket_via,change_via", [("A", "B"), ("B", "A")],
                         ids=["agent1-sees-B", "agent2-sees-A"])
def test_socket_on_one_agent_gets_what_the_other_node_changed(env, customer, socket_via,
                                                              change_via):
    """The socket goes through Apache `socket_via`'s /socket.io/ to its agent (A: agent 1 on
    Galera node 1, B: agent 2 on node 3); the customer stops and starts the server through
    the other Apache (another Galera node): task-finished with the operation's taskId and
    server-status arrive on the socket."""
    sid, vmid = bound_server(env, customer, change_via)
    c, got = test_agent.sio_client(env.apache(socket_via), customer.token)
    try:
        ack = c.call("subscribe-server", sid, timeout=10)
        assert ack == {"ok": True, "serverId": sid}, ack
        for verb, status in (("stop", "stopped"), ("start", "running")):
            r = customer.call(change_via, "POST", f"/api/server/{sid}/{verb}")
            assert r.status_code == 200, r.text
            task_id = r.json()["taskId"]
            # nobody asks for the task list: the agent that polls the cluster follows the task
            done = wait_for(lambda: [e for e in got["task-finished"]
                                     if e.get("taskId") == task_id or e.get("upid") == task_id],
                            what=f"task-finished of {verb} on {env.agent_of(socket_via).name}")
            assert done[0]["serverId"] == sid and done[0]["status"] == "ok", done
            wait_for(lambda: [e for e in got["server-status"]
                              if e["serverId"] == sid and e["status"] == status],
                     what=f"server-status {status}")
        assert not got["subscribe-error"], got["subscribe-error"]
    finally:
        c.disconnect()
