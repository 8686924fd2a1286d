"""mlchaos.lib.files.free_ports: distinct loopback ports that nothing listens on, none of those to avoid."""

from __future__ import annotations

import socket

from mlchaos.lib.files import free_ports


def test_free_ports_are_distinct_bindable_and_avoid_the_ports_chosen_before() -> None:
    chosen = free_ports(50)
    assert len(set(chosen)) == 50
    again = free_ports(200, avoid=chosen)  # far more than the first call: a repeat would be likely without avoid
    assert len(set(again)) == 200 and not set(again) & set(chosen)
    for port in again[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: nothing holds it once chosen
