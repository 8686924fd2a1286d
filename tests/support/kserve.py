"""A real KServe model server (the ``kserve`` Python SDK's ``ModelServer``) with an iris model, for tests.

KServe lives in a virtual environment of its own (``pip install kserve scikit-learn``): its Python
is ``$MLCHAOS_KSERVE_PYTHON``, else ``/var/tmp/kserve-venv/bin/python``. :func:`start` trains a
scikit-learn classifier on iris with that Python and serves it as a ``kserve.Model`` (V1 ``:predict``
and V2 ``/infer``; KServe's own server, our ten-line model class) on a free port, without gRPC. Uvicorn
binds every interface there (KServe's ModelServer takes no host): the server lives for one test module.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlchaos.lib.files import free_ports
from tests.support.mlserver import MLServer, ready

DEFAULT_PYTHON = Path("/var/tmp/kserve-venv/bin/python")
START_TIMEOUT = 120.0
HOW_TO_GET_IT = ("python3 -m venv /var/tmp/kserve-venv && /var/tmp/kserve-venv/bin/pip install kserve scikit-learn"
                 " (or set MLCHAOS_KSERVE_PYTHON to a Python that imports kserve)")
SERVE = """\
import sys
import uuid
import numpy as np
import kserve
from kserve import InferOutput, InferRequest, InferResponse
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


class Iris(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.load()

    def load(self):
        x, y = load_iris(return_X_y=True)
        self.model = LogisticRegression(max_iter=500).fit(x, y)
        self.ready = True
        return True

    def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            rows = np.asarray(payload.inputs[0].as_numpy(), dtype=float).reshape(-1, 4)
            out = InferOutput(name="predict", shape=[len(rows)], datatype="INT64")
            out.set_data_from_numpy(self.model.predict(rows).astype(np.int64))
            request_id = payload.id or str(uuid.uuid4())  # KServe's response needs an id; the probes send none
            return InferResponse(model_name=self.name, infer_outputs=[out], response_id=request_id)
        rows = np.asarray(payload["instances"], dtype=float)
        return {"predictions": [int(c) for c in self.model.predict(rows)]}


kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Iris("iris")])
"""


def python() -> Path | None:
    """The Python that imports kserve, or None when there is none."""
    configured = os.environ.get("MLCHAOS_KSERVE_PYTHON")
    found = Path(configured) if configured else DEFAULT_PYTHON
    if not found.is_file():
        return None
    probe = subprocess.run([str(found), "-c", "import kserve, sklearn"], capture_output=True, timeout=120)
    return found if probe.returncode == 0 else None


def start(interpreter: Path, folder: Path) -> MLServer:
    """Write the serving script into ``folder``, start it and wait until the iris model is ready."""
    script = folder / "serve.py"
    script.write_text(SERVE)
    (port,) = free_ports(1)
    log = folder / "kserve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(interpreter), str(script), str(port)], cwd=folder, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = MLServer(f"http://127.0.0.1:{port}", "", process, log)
    if not ready(server, START_TIMEOUT):
        server.stop()
        raise RuntimeError(f"KServe did not get ready within {START_TIMEOUT:g}s:\n{server.log_tail()}")
    return server
