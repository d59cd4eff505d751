"""MQTT test helpers: the machine's Mosquitto (127.0.0.1:1883, shared: every test uses topics of
its own), a private Mosquitto a test starts (a password file, a plain and a TLS listener on free
ports, a CA made here), and paho clients to publish and to collect what comes."""

import getpass
import os
import queue
import shutil
import socket
import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from support.gatehouse import missing, restartable_port, wait_for_port
from support.pki import make_ca, make_server_cert, pem

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
SHARED = ("127.0.0.1", 1883)
USER, PASSWORD = "gateway", "mqtt-s3cret-pw"


def shared_broker():
    try:
        socket.create_connection(SHARED, timeout=1).close()
    except OSError:
        missing(f"the Mosquitto broker at {SHARED[0]}:{SHARED[1]}")
    return SHARED


def unique_topic(name="t"):
    return f"gatehouse-test/{name}/{uuid.uuid4().hex[:10]}"


class Mosquitto:
    """A private broker: `port` takes user/password, `tls_port` the same over TLS (the server
    certificate signed by a CA made here, files in `certs`). stop() and start() keep the ports;
    with `persistence`, also the sessions, their subscriptions and queued messages (saved at stop)."""

    def __init__(self, workdir, certs, persistence=False):
        if not (os.path.exists(MOSQUITTO) and shutil.which("mosquitto_passwd")):
            missing("Mosquitto (apt-get install mosquitto)")
        self.workdir, self.certs = workdir, certs
        self.port, self.tls_port = restartable_port(), restartable_port()  # kept across stop() and start()
        ca_key, self.ca = make_ca("Gatehouse MQTT test CA")
        server_key, server_cert = make_server_cert(ca_key, self.ca)
        _, self.wrong_ca = make_ca("Some other CA")
        (certs / "mqtt-ca.pem").write_bytes(pem(self.ca))
        (certs / "mqtt-wrong-ca.pem").write_bytes(pem(self.wrong_ca))
        (workdir / "server.pem").write_bytes(pem(server_cert))
        (workdir / "server.key").write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        passwords = workdir / "passwords"
        subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), USER, PASSWORD], check=True)
        tls = f"cafile {certs / 'mqtt-ca.pem'}\ncertfile {workdir / 'server.pem'}\nkeyfile {workdir / 'server.key'}\n"
        # The TLS port on 127.0.0.2 too: an address the server certificate does not name.
        (workdir / "mosquitto.conf").write_text(
            # Run as root, Mosquitto would switch to its own user, who cannot read the test's files.
            f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\npassword_file {passwords}\n"
            f"persistence {'true' if persistence else 'false'}\npersistence_location {workdir}/\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\n{tls}listener {self.tls_port} 127.0.0.2\n{tls}"
        )
        self.proc = None

    @property
    def ca_pem(self):
        return pem(self.ca).decode()

    def start(self):
        log = open(self.workdir / "mosquitto.log", "a")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.workdir / "mosquitto.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, self.proc, timeout=10)
        wait_for_port(self.tls_port, self.proc, timeout=10)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# ----- paho clients of the tests (threads of their own, not gevent) -----
def connect(address, client_id=None, username=None, password=None, clean_start=True, expiry=0):
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:10]}", protocol=mqtt.MQTTv5
    )
    if username:
        client.username_pw_set(username, password)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = expiry
    connected = queue.Queue()
    client.on_connect = lambda c, u, flags, reason, props: connected.put((reason, flags.session_present))
    client.connect(address[0], address[1], 30, clean_start=clean_start, properties=properties)
    client.loop_start()
    reason, session_present = connected.get(timeout=10)
    assert not reason.is_failure, reason
    client.session_present = session_present
    return client


def publish(address, topic, payload, qos=1, retain=False, user_properties=(), **options):
    client = connect(address, **options)
    try:
        properties = Properties(PacketTypes.PUBLISH)
        if user_properties:
            properties.UserProperty = list(user_properties)
        client.publish(topic, payload, qos=qos, retain=retain, properties=properties).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


class Collector:
    """Subscribes (SUBACK awaited) and collects what comes; get(n) waits for n messages."""

    def __init__(self, address, topic, qos=1, **options):
        self.messages = queue.Queue()
        self.client = connect(address, **options)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        subscribed = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, reasons, props: subscribed.put(reasons)
        self.client.subscribe(topic, qos)
        assert not subscribed.get(timeout=10)[0].is_failure

    def get(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        return [self.messages.get(timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def nothing_within(self, seconds):
        try:
            self.messages.get(timeout=seconds)
            return False
        except queue.Empty:
            return True

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def auth(password=PASSWORD):
    return {"security": {"auth": {"username": USER, "password": password}}}
