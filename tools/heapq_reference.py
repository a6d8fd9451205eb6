# Reference run of CPython's heapq for looplab's TimerHeap in TieOrder::Asyncio mode.
# Run: python3 tools/heapq_reference.py   (CPython 3.11.7 was used)
import heapq

M = (1 << 64) - 1
class Rng:
    def __init__(self, s): self.s = s
    def step(self):  # xorshift64, same as the Rust test
        s = self.s
        s ^= (s << 13) & M; s ^= s >> 7; s ^= (s << 17) & M
        self.s = s; return s

class H:  # like asyncio.TimerHandle: __lt__ compares only the deadline
    def __init__(self, when, seq): self.when, self.seq, self.cancelled = when, seq, False
    def __lt__(self, o): return self.when < o.when

heap, handles, cancelled, fired = [], {}, 0, []
def cleanup():  # BaseEventLoop._run_once, the top
    global heap, cancelled
    n = len(heap)
    if n > 100 and cancelled / n > 0.5:
        heap = [h for h in heap if not h.cancelled]; heapq.heapify(heap); cancelled = 0
    else:
        while heap and heap[0].cancelled:
            cancelled -= 1; heapq.heappop(heap)
def insert(when, seq):
    h = H(when, seq); handles[seq] = h; heapq.heappush(heap, h)
def cancel(seq):
    global cancelled
    h = handles.pop(seq, None)
    if h is not None: h.cancelled = True; cancelled += 1
def expire(now):
    global cancelled
    cleanup()
    while heap and heap[0].when <= now:
        h = heapq.heappop(heap)
        if h.cancelled: cancelled -= 1
        else: handles.pop(h.seq); fired.append(h.seq)
def next_deadline():
    cleanup(); return heap[0].when if heap else None

rng = Rng(0x5EED)
for i in range(150): insert((rng.step() % 5) * 1000, i)
for i in range(150):
    if rng.step() % 10 < 6: cancel(i)
next_deadline()
now, seq = 0, 150
for _ in range(300):
    r = rng.step() % 8
    if r <= 3: insert(now + (rng.step() % 6) * 1000, seq); seq += 1
    elif r == 4: cancel(rng.step() % seq)
    elif r == 5: next_deadline()
    else: now += (rng.step() % 3) * 1000; expire(now)
expire(M)
print(len(fired)); print(fired)

# The ten-ties experiment from design-anchors.md A.1:
h = []
for i in range(10): heapq.heappush(h, H(50, i))
print([heapq.heappop(h).seq for _ in range(10)])
