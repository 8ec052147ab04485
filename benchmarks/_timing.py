"""Small timing helpers shared by the benchmarks: best-of-repeats per call, and ratios."""
import time


def per_call(func, *args, repeat=5, min_time=0.05):
    """Best time per call of ``func(*args)`` in seconds, over ``repeat`` batches of calls."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            func(*args)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2
    best = elapsed / number
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            func(*args)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def once(func, *args):
    """Wall time of one call, and its result."""
    start = time.perf_counter()
    out = func(*args)
    return time.perf_counter() - start, out


def row(label, ours, ref, target=None):
    """One table row: both times and the ratio ours / ref, with the target if given."""
    ratio = ours / ref
    goal = f"   target {target}" if target else ""
    print(f"{label:<44s} {_seconds(ours)} {_seconds(ref)} {ratio:8.3f}x{goal}")
    return ratio


def _seconds(t):
    """A time with a readable unit, 15 characters wide."""
    for unit, scale in (("s ", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if t >= scale or unit == "ns":
            return f"{t / scale:12.3f} {unit}"
