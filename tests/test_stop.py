"""Ctrl-C and SIGTERM during a search: the first asks to stop at a safe point, the second interrupts."""

from __future__ import annotations

import signal

import pytest

from autocompress.engine.stop import StopRequested, StopSignals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_is_deferred_to_a_safe_point_and_a_second_interrupts(signum: int) -> None:
    # A shell starts a background job with SIGINT ignored, and StopSignals rightly keeps that choice (the test
    # below): start from the interactive disposition, whatever started pytest.
    interactive = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}[signum]
    original = signal.signal(signum, interactive)
    try:
        _deferred_then_interrupted(signum)
    finally:
        signal.signal(signum, original)


def _deferred_then_interrupted(signum: int) -> None:
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
