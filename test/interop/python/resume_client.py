#!/usr/bin/python3
"""A python-socketio client of realtime-service, run by internal/socketio/python_interop_test.go.

It connects with a token and auth cursorArg false, so that a handler written `def on_cm(data)`
gets exactly the event's payload. Its `cursor` handler gets either a cursor (a string: the
opening cursor right after the connect, one after a resume's replay, one every
REALTIME_CURSOR_EVERY events or at a ping) or the {"id"} of the event just before it; the client
keeps the last cursor and the IDs of the events after it, and sends both back as auth "cursor",
"<cursor>~<id>,<id>", when python-socketio reconnects (auth is a callable, evaluated at each
connect). Scenario: the opening cursor; event 1 live; the server drops every TCP connection;
events 2 and 3 are published while the client is away; the client reconnects by itself and
resumes from the opening cursor past event 1, so that it gets 2 and 3 and nothing twice; whoami
over an ack; event 4 live; a clean disconnect.

Usage: resume_client.py polling|websocket|upgrade, with SIO_URL (the server) and
SIO_CONTROL_URL (the test's control server: /control/token, /control/publish, /control/drop).
It prints one JSON line: {"received", "cursors", "ids", "resumed_with", "published" (the event
IDs), "connects", "transport", "whoami"}.
"""
import json
import os
import sys
import threading

import requests
import socketio

MODE = sys.argv[1]
URL = os.environ["SIO_URL"]
CONTROL = os.environ["SIO_CONTROL_URL"]
USER = "py-" + MODE
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}[MODE]
WAIT = 20  # seconds, any single wait

state = {"received": [], "cursors": [], "ids": [], "cursor": None, "since": [], "resumed_with": None,
         "connects": 0, "disconnects": 0}
changed = threading.Condition()
token = requests.get(CONTROL + "/control/token", params={"user": USER}, timeout=WAIT).text


def auth():
    """The CONNECT auth: the token, no trailing argument, and what to resume from: the last
    cursor and the IDs of the events received after it."""
    a = {"token": token, "cursorArg": False}
    with changed:
        if state["cursor"]:
            a["cursor"] = "~".join([state["cursor"]] + ([",".join(state["since"])] if state["since"] else []))
            state["resumed_with"] = a["cursor"]
    return a


def publish(n):
    r = requests.post(CONTROL + "/control/publish", json={"userIds": [USER], "data": {"n": n}}, timeout=WAIT)
    r.raise_for_status()
    return r.json()["id"]


def wait_until(what, cond):
    with changed:
        if not changed.wait_for(cond, timeout=WAIT):
            print("timed out waiting for " + what + ": " + json.dumps(state), file=sys.stderr, flush=True)
            os._exit(1)  # the client's threads would keep the process alive


sio = socketio.Client(reconnection=True, reconnection_delay=1, reconnection_delay_max=1, randomization_factor=0)
published = {}


@sio.on("concept-mastered")
def on_cm(data):  # one argument: the record's value, nothing else
    with changed:
        state["received"].append(data["n"])
        changed.notify_all()


@sio.on("cursor")
def on_cursor(arg):  # a cursor (a string), or {"id"} of the event before it
    with changed:
        if isinstance(arg, str):
            state["cursor"], state["since"] = arg, []
            state["cursors"].append(arg)
        else:
            state["since"].append(arg["id"])
            state["ids"].append(arg["id"])
        changed.notify_all()


@sio.event
def connect():
    with changed:
        state["connects"] += 1
        changed.notify_all()


@sio.event
def disconnect():
    with changed:
        state["disconnects"] += 1
        first = state["disconnects"] == 1
        changed.notify_all()
    if first:  # the drop: publish while the client is away (it reconnects after 1 s)
        published[2] = publish(2)
        published[3] = publish(3)
        with changed:
            changed.notify_all()


sio.connect(URL, auth=auth, transports=TRANSPORTS, wait_timeout=WAIT)
transport = sio.transport()
# Handlers run on threads of their own (python-socketio 5), so the opening cursor is awaited
# before event 1 is published: a cursor handled after a later ID would drop that ID.
wait_until("the opening cursor", lambda: state["cursor"] is not None)
published[1] = publish(1)
wait_until("event 1 and its ID", lambda: published[1] in state["ids"])

requests.post(CONTROL + "/control/drop", timeout=WAIT).raise_for_status()
wait_until("the reconnection", lambda: state["connects"] == 2 and 3 in published)
wait_until("events 2 and 3, their IDs and the cursor past them",
           lambda: len(state["received"]) >= 3 and published[3] in state["ids"] and len(state["cursors"]) >= 2)
whoami = sio.call("whoami", timeout=WAIT)
published[4] = publish(4)
wait_until("event 4", lambda: 4 in state["received"] and published[4] in state["ids"])
sio.disconnect()

print(json.dumps({
    "received": state["received"],
    "cursors": state["cursors"],
    "ids": state["ids"],
    "resumed_with": state["resumed_with"],
    "published": [published[n] for n in (1, 2, 3, 4)],
    "connects": state["connects"],
    "transport": transport,
    "whoami": whoami,
}))
