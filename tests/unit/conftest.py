"""Unit tests are hermetic: this machine's pip configuration never reaches them.

By default the builder stage's pip settings come from the host (`pip config list`, PIP_*,
REQUESTS_CA_BUNDLE, SSL_CERT_FILE): a developer's CA bundle or wheel folder would change what
`list` prints and which torch version the matrix pins. Tests that are about the host's settings
pass `host=` to `pip_inputs` themselves.
"""

from __future__ import annotations

import pytest

from buildbench.run import pipconfig


@pytest.fixture(autouse=True)
def no_host_pip_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipconfig, "host_pip_config", lambda: {})
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
