#!/usr/bin/python3
"""A python-socketio client of realtime-service, run by internal/socketio/python_interop_test.go.

It connects with a token and auth cursorArg false, so that a handler written `def on_cm(data)`
gets exactly the event's payload; it keeps the cursor of the `cursor` packet that follows each
event and sends it back as auth "cursor" when python-socketio reconnects (auth is a callable,
evaluated at each connect). Scenario: event 1 live; the server drops every TCP connection;
events 2 and 3 are published while the client is away; the client reconnects by itself and
resumes from event 1's cursor, so that it gets 2 and 3 and nothing twice; whoami over an ack;
event 4 live; a clean disconnect.

Usage: resume_client.py polling|websocket|upgrade, with SIO_URL (the server) and
SIO_CONTROL_URL (the test's control server: /control/token, /control/publish, /control/drop).
It prints one JSON line: {"received", "cursors", "published", "connects", "transport", "whoami"}.
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

state = {"received": [], "cursors": [], "cursor": None, "connects": 0, "disconnects": 0}
changed = threading.Condition()
token = requests.get(CONTROL + "/control/token", params={"user": USER}, timeout=WAIT).text


def auth():
    """The CONNECT auth: the token, no cursor argument, and the cursor to resume from."""
    a = {"token": token, "cursorArg": False}
    with changed:
        if state["cursor"]:
            a["cursor"] = state["cursor"]
    return a


def publish(n):
    r = requests.post(CONTROL + "/control/publish", json={"userIds": [USER], "data": {"n": n}}, timeout=WAIT)
    r.raise_for_status()
    return r.json()["cursor"]


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
def on_cursor(cursor):
    with changed:
        state["cursor"] = cursor
        state["cursors"].append(cursor)
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
published[1] = publish(1)
wait_until("event 1 and its cursor", lambda: state["cursor"] == published[1])

requests.post(CONTROL + "/control/drop", timeout=WAIT).raise_for_status()
wait_until("the reconnection", lambda: state["connects"] == 2 and 3 in published)
wait_until("events 2 and 3 and their cursors", lambda: len(state["received"]) >= 3 and published[3] in state["cursors"])
whoami = sio.call("whoami", timeout=WAIT)
published[4] = publish(4)
wait_until("event 4", lambda: 4 in state["received"] and published[4] in state["cursors"])
sio.disconnect()

print(json.dumps({
    "received": state["received"],
    "cursors": state["cursors"],
    "published": [published[n] for n in (1, 2, 3, 4)],
    "connects": state["connects"],
    "transport": transport,
    "whoami": whoami,
}))
