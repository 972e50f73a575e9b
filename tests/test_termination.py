"""SIGTERM ends the wait even when the kernel hands the signal to a thread other than the main one."""

import subprocess
import sys
import textwrap
import time

from harness.processes import ROOT

# The main thread blocks SIGTERM, so the kernel must deliver it to the helper thread,
# as it may in the model server (gRPC and TensorFlow threads) at any time.
WAITER = textwrap.dedent("""
    import signal, sys, threading, time
    from serving.termination import TerminationSignal

    termination = TerminationSignal()
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    print("waiting", flush=True)
    termination.wait()
    print("terminated", flush=True)
""")


def test_sigterm_received_by_another_thread_ends_the_wait():
    process = subprocess.Popen([sys.executable, "-c", WAITER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "waiting"
        time.sleep(0.2)
        process.terminate()
        assert process.wait(5) == 0
        assert process.stdout.read().strip() == "terminated"
    finally:
        process.kill()
