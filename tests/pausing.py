"""python tests/pausing.py AT TRAIN_ARGS...: `python -m pyconvnet.train TRAIN_ARGS` that stops at
the instant AT, prints "paused at AT" and waits there for a signal, so that a test interrupts or
kills the run at that exact instant, however loaded the machine is:

    step:E:S      right after the SGD update of step S of epoch E (both counted from 1)
    validation:E  as the validation after epoch E starts
    checkpoint:N  inside the N-th checkpoint write: the temporary written, not yet renamed
    final         as the final evaluation starts

A Ctrl-C or SIGTERM is handled by the trainer's own handler at that instant (the run then goes
on as it would after such a signal); a kill ends the process there.
"""
import signal
import sys
import time

from pyconvnet import checkpoint, train
from pyconvnet.trainer import Trainer


def pause(at: str) -> None:
    """Announces `at` and returns once the trainer's handler has run for a Ctrl-C or SIGTERM."""
    received = []
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(sig, frame):
        received.append(sig)
        signal.signal(sig, handlers[sig])
        if callable(handlers[sig]):
            handlers[sig](sig, frame)
        else:  # the default action (SIGTERM's ends the process)
            signal.raise_signal(sig)
    for sig in handlers:
        signal.signal(sig, on_signal)
    print(f"paused at {at}", flush=True)
    try:
        while not received:  # a signal that arrives before the loop is counted all the same
            time.sleep(0.01)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def install(at: str) -> None:
    kind, *numbers = at.split(":")
    numbers = [int(n) for n in numbers]
    if kind == "step":
        train_step = Trainer.train_step

        def step_then_pause(self, *args):
            result = train_step(self, *args)
            if [self.epoch + 1, self.step + 1] == numbers:
                pause(at)
            return result
        Trainer.train_step = step_then_pause
    elif kind == "validation":
        evaluate = Trainer.evaluate

        def pause_then_evaluate(self, split="val", ten_crop=False):
            if not ten_crop and [self.epoch + 1] == numbers:
                pause(at)
            return evaluate(self, split, ten_crop)
        Trainer.evaluate = pause_then_evaluate
    elif kind == "checkpoint":
        atomic_write, writes = checkpoint.atomic_write, []

        def write_then_pause(path, write):
            writes.append(path)

            def write_pausing(f):
                write(f)
                if len(writes) == numbers[0]:
                    pause(at)
            return atomic_write(path, write_pausing)
        checkpoint.atomic_write = write_then_pause
    elif kind == "final":
        finish = Trainer._finish

        def pause_then_finish(self):
            pause(at)
            return finish(self)
        Trainer._finish = pause_then_finish
    else:
        raise SystemExit(f"pausing.py: unknown instant {at!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    sys.exit(train.main(sys.argv[2:]))
