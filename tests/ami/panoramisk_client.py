"""AMI client of crates/carillon/tests/ami.rs, on panoramisk (PyPI).

Usage: panoramisk_client.py HOST PORT SECONDS

Prints one JSON object per line (flushed) for the Rust test to check:
  {"kind": "wrong_login", ...}  the library's login with a wrong secret
  {"kind": "md5_login", ...}    Challenge + Login AuthType MD5 (Key = md5(challenge + secret))
  {"kind": "login", ...}        the library's plain login
  {"kind": "ping", ...}         Ping's response
  {"kind": "ready"}             listening for events; the test places a call now
  {"kind": "event", ...}        every event received, headers as sent
  {"kind": "list", ...}         CoreShowChannels, sent once both channels are bridged
Ends after two Hangup events, or after SECONDS.
"""
import asyncio
import hashlib
import json
import sys

from panoramisk import Manager

HOST, PORT, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
USER, SECRET = "dialer", "changeme-ami"


def out(kind, **fields):
    fields["kind"] = kind
    print(json.dumps(fields), flush=True)


def plain(msg):
    return {k: v for k, v in dict(msg).items()}


async def login_with(secret):
    m = Manager(host=HOST, port=PORT, username=USER, secret=secret,
                ping_delay=3600, reconnect_timeout=3600)
    await m.connect()
    resp = await asyncio.wait_for(m.authenticated_future, 10)
    return m, resp


async def main():
    # A wrong secret, through the library's own login.
    m, resp = await login_with("not-the-secret")
    out("wrong_login", response=plain(resp), authenticated=m.authenticated)
    m.close()

    # MD5: Challenge, then Login with the key.
    m = Manager(host=HOST, port=PORT, ping_delay=3600, reconnect_timeout=3600)
    await m.connect()
    ch = await asyncio.wait_for(
        m.send_action({"Action": "Challenge", "AuthType": "MD5"}), 10)
    key = hashlib.md5((ch["Challenge"] + SECRET).encode()).hexdigest()
    resp = await asyncio.wait_for(m.send_action(
        {"Action": "Login", "AuthType": "MD5", "Username": USER, "Key": key,
         "Events": "off"}), 10)
    out("md5_login", challenge=plain(ch), response=plain(resp))
    m.close()

    # Plain login; then Ping and the events of a call.
    m, resp = await login_with(SECRET)
    out("login", response=plain(resp), authenticated=m.authenticated)
    pong = await asyncio.wait_for(m.send_action({"Action": "Ping"}), 10)
    out("ping", response=plain(pong))

    hangups = []
    entered = []
    done = asyncio.get_running_loop().create_future()

    async def list_channels():
        items = await asyncio.wait_for(
            m.send_action({"Action": "CoreShowChannels"}), 10)
        out("list", packets=[plain(p) for p in items])

    def on_event(manager, event):
        out("event", headers=plain(event))
        name = event.get("Event", "")
        if name == "BridgeEnter":
            entered.append(event)
            if len(entered) == 2:
                asyncio.ensure_future(list_channels())
        if name == "Hangup":
            hangups.append(event)
            if len(hangups) == 2 and not done.done():
                done.set_result(True)

    m.register_event("*", on_event)
    out("ready")
    try:
        await asyncio.wait_for(done, SECONDS)
    except asyncio.TimeoutError:
        out("timeout")
    await asyncio.sleep(0.2)
    m.close()


asyncio.run(main())
