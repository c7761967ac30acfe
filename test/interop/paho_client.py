#!/usr/bin/python3
"""One Eclipse Paho (paho-mqtt 1.6, Debian's python3-paho-mqtt) client for the interop suite.

Usage: /usr/bin/python3 paho_client.py, the spec as one JSON line on stdin (stdin, not argv: a
payload at the size cap is larger than one argument may be).

The spec says how to connect (version 4 = 3.1.1 or 5 = 5.0, client id, clean session / session
expiry, keepalive, will, CONNECT properties), what to subscribe to and what to publish. The
script does that in order, then reads one JSON command per line on stdin:
  {"op": "publish", "messages": [...]}   {"op": "subscribe", "subscriptions": [...]}
  {"op": "unsubscribe", "topics": [...]} {"op": "disconnect"}   (DISCONNECT, then exit)
  {"op": "drop"}                         (exit without DISCONNECT: the kernel closes the socket)
End of stdin is a "disconnect".

Everything the client observes is printed as one JSON object per line on stdout, as it happens:
  connack  {sessionPresent, code, properties}      suback   {codes}
  unsuback {codes}  (null in 3.1.1: no reason codes) ack      {type: puback|pubrec|pubcomp, mid, code}
  message  {topic, payload (hex), qos, retain, properties}
  pingreq / pingresp (sent / received)             disconnect {code} (a DISCONNECT from the server)
  closed   {rc} (the connection ended)             done     {op} (an operation finished)
  error    {message}
Payloads and correlation data are hex strings both ways.
"""
import json
import os
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

_print_lock = threading.Lock()


def emit(event, **fields):
    fields = {"event": event, **fields}
    with _print_lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def fail(message):
    emit("error", message=message)
    sys.stdout.flush()
    os._exit(2)


def props_to_json(props):
    """Properties as a dict with camelCase keys (paho's names, first letter lowered)."""
    if props is None or props.isEmpty():
        return None
    out = {}
    for name, value in props.json().items():
        key = name[0].lower() + name[1:]
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, (list, tuple)):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[key] = value
    return out


def publish_props(spec):
    if not spec:
        return None
    props = Properties(PacketTypes.PUBLISH)
    if "userProperties" in spec:
        props.UserProperty = [tuple(kv) for kv in spec["userProperties"]]
    if "contentType" in spec:
        props.ContentType = spec["contentType"]
    if "responseTopic" in spec:
        props.ResponseTopic = spec["responseTopic"]
    if "correlationData" in spec:
        props.CorrelationData = bytes.fromhex(spec["correlationData"])
    if "messageExpiryInterval" in spec:
        props.MessageExpiryInterval = spec["messageExpiryInterval"]
    if "payloadFormatIndicator" in spec:
        props.PayloadFormatIndicator = spec["payloadFormatIndicator"]
    if "topicAlias" in spec:
        props.TopicAlias = spec["topicAlias"]
    return props


class RecordingClient(mqtt.Client):
    """Reports the packets paho hides from its callbacks: acks' reason codes, PINGRESP, DISCONNECT."""

    def _packet_handle(self):
        cmd = self._in_packet["command"] & 0xF0
        packet = bytes(self._in_packet["packet"])
        if cmd in (mqtt.PUBACK, mqtt.PUBREC, mqtt.PUBCOMP):
            kind = {mqtt.PUBACK: "puback", mqtt.PUBREC: "pubrec", mqtt.PUBCOMP: "pubcomp"}[cmd]
            mid = int.from_bytes(packet[0:2], "big")
            emit("ack", type=kind, mid=mid, code=packet[2] if len(packet) > 2 else 0)
        elif cmd == mqtt.PINGRESP:
            emit("pingresp")
        elif cmd == mqtt.DISCONNECT:
            emit("disconnect", code=packet[0] if len(packet) > 0 else 0)
        return super()._packet_handle()

    def _send_pingreq(self):
        emit("pingreq")
        return super()._send_pingreq()


def main():
    spec = json.loads(sys.stdin.readline())
    v5 = spec.get("version", 4) == 5
    client_id = spec.get("clientId") or ""
    clean = spec.get("clean", True)
    if v5:
        client = RecordingClient(client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = RecordingClient(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)

    connected = threading.Event()
    acked = {"sub": threading.Event(), "unsub": threading.Event()}
    state = {"code": None, "ending": False}

    def on_connect(c, userdata, flags, rc, properties=None):
        code = rc.value if hasattr(rc, "value") else rc
        state["code"] = code
        emit("connack", sessionPresent=bool(flags.get("session present", 0)), code=code,
             properties=props_to_json(properties) if v5 else None)
        connected.set()

    def on_subscribe(c, userdata, mid, granted, properties=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        emit("suback", codes=codes)
        acked["sub"].set()

    def on_unsubscribe(c, userdata, mid, properties=None, reason_codes=None):
        if reason_codes is None:
            codes = None
        elif isinstance(reason_codes, list):
            codes = [r.value for r in reason_codes]
        else:
            codes = [reason_codes.value]
        emit("unsuback", codes=codes)
        acked["unsub"].set()

    def on_message(c, userdata, msg):
        emit("message", topic=msg.topic, payload=msg.payload.hex(), qos=msg.qos, retain=bool(msg.retain),
             properties=props_to_json(getattr(msg, "properties", None)) if v5 else None)

    def on_disconnect(c, userdata, rc, properties=None):
        emit("closed", rc=rc.value if hasattr(rc, "value") else rc)
        connected.set()
        if state["ending"] is False:
            # Lost, not ended by us: exit rather than let paho's loop connect again.
            os._exit(0)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_unsubscribe = on_unsubscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect

    will = spec.get("will")
    if will:
        client.will_set(will["topic"], bytes.fromhex(will.get("payload", "")), will.get("qos", 0),
                        will.get("retain", False), publish_props(will.get("properties")) if v5 else None)

    keepalive = spec.get("keepalive", 60)
    if v5:
        props = Properties(PacketTypes.CONNECT)
        cp = spec.get("connectProperties") or {}
        if "sessionExpiry" in spec:
            props.SessionExpiryInterval = spec["sessionExpiry"]
        if "topicAliasMaximum" in cp:
            props.TopicAliasMaximum = cp["topicAliasMaximum"]
        if "receiveMaximum" in cp:
            props.ReceiveMaximum = cp["receiveMaximum"]
        client.connect(spec["host"], spec["port"], keepalive, clean_start=clean,
                       properties=None if props.isEmpty() else props)
    else:
        client.connect(spec["host"], spec["port"], keepalive)
    client.loop_start()
    if not connected.wait(10):
        fail("no CONNACK within 10 s")
    if state["code"] != 0:
        client.loop_stop()
        os._exit(0)

    def subscribe(subs, identifier=None):
        if not subs:
            return
        acked["sub"].clear()
        if v5:
            props = None
            if identifier is not None:
                props = Properties(PacketTypes.SUBSCRIBE)
                props.SubscriptionIdentifier = identifier
            client.subscribe([(s["topic"], SubscribeOptions(qos=s.get("qos", 0), noLocal=s.get("noLocal", False),
                                                             retainAsPublished=s.get("retainAsPublished", False),
                                                             retainHandling=s.get("retainHandling", 0)))
                              for s in subs], properties=props)
        else:
            client.subscribe([(s["topic"], s.get("qos", 0)) for s in subs])
        if not acked["sub"].wait(10):
            fail("no SUBACK within 10 s")

    def unsubscribe(topics):
        acked["unsub"].clear()
        client.unsubscribe(topics)
        if not acked["unsub"].wait(10):
            fail("no UNSUBACK within 10 s")

    def publish(messages):
        for m in messages:
            info = client.publish(m["topic"], bytes.fromhex(m.get("payload", "")), m.get("qos", 0),
                                  m.get("retain", False), publish_props(m.get("properties")) if v5 else None)
            info.wait_for_publish(10)
            if not info.is_published():
                fail("publish not completed within 10 s")

    subscribe(spec.get("subscribe"), spec.get("subscriptionIdentifier"))
    if spec.get("unsubscribe"):
        unsubscribe(spec["unsubscribe"])
    publish(spec.get("publish") or [])
    emit("done", op="start")

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "publish":
            publish(cmd["messages"])
        elif op == "subscribe":
            subscribe(cmd["subscriptions"], cmd.get("subscriptionIdentifier"))
        elif op == "unsubscribe":
            unsubscribe(cmd["topics"])
        elif op == "drop":
            emit("done", op="drop")
            os._exit(0)
        elif op == "disconnect":
            break
        emit("done", op=op)
    # disconnect(): DISCONNECT without reason code or properties (e0 00), then the loop ends.
    state["ending"] = True
    client.disconnect()
    client.loop_stop()
    emit("done", op="disconnect")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
        fail(f"{type(e).__name__}: {e}")
    sys.stdout.flush()
    os._exit(0)
