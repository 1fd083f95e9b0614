"""Ctrl-C and SIGTERM during a search: the first asks to stop at a safe point, the second interrupts."""

from __future__ import annotations

import signal

import pytest

from autocompress.engine.stop import StopRequested, StopSignals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_is_deferred_to_a_safe_point_and_a_second_interrupts(signum: int) -> None:
    before = signal.getsignal(signum)
    with StopSignals() as stop:
        stop.check()  # nothing asked yet
        signal.raise_signal(signum)  # would raise KeyboardInterrupt (or end the process) mid-call without the handler
        assert stop.requested
        with pytest.raises(StopRequested):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signum)
    assert signal.getsignal(signum) is before


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignals() as stop:
            signal.raise_signal(signal.SIGINT)
            assert not stop.requested
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
