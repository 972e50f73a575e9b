"""SIGTERM ends the wait even when the kernel hands the signal to a thread other than the main one."""

import subprocess
import sys
import textwrap

from harness.processes import ROOT

# The main thread blocks SIGTERM, so the kernel must deliver it to another thread, as it
# may in the model server (gRPC and TensorFlow threads) at any time. "waiting" is printed
# once the main thread is blocked inside the wait, where a handler that only runs when the
# main thread next executes bytecode would never run.
WAITER = textwrap.dedent("""
    import signal, sys, threading, time
    from serving.termination import TerminationSignal

    termination = TerminationSignal()
    main = threading.main_thread()

    def report_the_main_thread_waiting():
        while True:
            frame = sys._current_frames()[main.ident]
            inner, names = frame.f_code, set()
            while frame is not None:
                names.add(frame.f_code.co_qualname)
                frame = frame.f_back
            if inner.co_filename == threading.__file__ and "TerminationSignal.wait" in names:
                print("waiting", flush=True)
                return
            time.sleep(0.001)

    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    threading.Thread(target=report_the_main_thread_waiting, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    termination.wait()
    print("terminated", flush=True)
""")


def test_sigterm_received_by_another_thread_ends_the_wait():
    process = subprocess.Popen([sys.executable, "-c", WAITER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "waiting"
        process.terminate()
        assert process.wait(5) == 0
        assert process.stdout.read().strip() == "terminated"
    finally:
        process.kill()
