import EventLoop
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct TimerTests {
    @Test func oneShotTimerFiresOnce() {
        let loop = EventLoop()
        var fired = 0
        let timer = Timer(loop: loop) { fired += 1 }
        timer.schedule(milliseconds: 5)
        #expect(timer.isScheduled)
        let end = Timer(loop: loop) { loop.stop() }
        end.schedule(milliseconds: 80)
        runLoop(loop, keeping: timer, end)
        #expect(fired == 1)
        #expect(!timer.isScheduled)
    }

    @Test func repeatingTimerFiresUntilCancelled() {
        let loop = EventLoop()
        var fired = 0
        var ticker: Timer?
        ticker = Timer(loop: loop, repeating: true) {
            fired += 1
            if fired == 5 { ticker?.cancel() }
        }
        ticker?.schedule(milliseconds: 3)
        let end = Timer(loop: loop) { loop.stop() }
        end.schedule(milliseconds: 100)
        runLoop(loop, keeping: end)
        #expect(fired == 5)
        #expect(ticker?.isScheduled == false)
        ticker = nil
    }

    @Test func reschedulingMovesTheTimer() {
        let loop = EventLoop()
        let start = EventLoop.monotonicNanos()
        var firedAt: [UInt64] = []
        let timer = Timer(loop: loop) { firedAt.append(EventLoop.monotonicNanos() - start) }
        timer.schedule(milliseconds: 2000)
        // Moved earlier: fires at ~30 ms, not at 2 s.
        let mover = Timer(loop: loop) { timer.schedule(milliseconds: 20) }
        mover.schedule(milliseconds: 10)
        // Moved later while pending: a second schedule replaces the first.
        let other = Timer(loop: loop) {}
        other.schedule(milliseconds: 5)
        other.schedule(milliseconds: 60)
        var otherFiredEarly = false
        let probe = Timer(loop: loop) { otherFiredEarly = !other.isScheduled }
        probe.schedule(milliseconds: 30)
        let end = Timer(loop: loop) { loop.stop() }
        end.schedule(milliseconds: 150)
        runLoop(loop, keeping: timer, mover, other, probe, end)
        #expect(firedAt.count == 1)
        if let first = firedAt.first {
            #expect(first >= 28_000_000 && first < 1_000_000_000, "fired after \(first / 1_000_000) ms")
        }
        #expect(!otherFiredEarly)
    }

    @Test func deferredActionCoalesces() {
        let loop = EventLoop()
        var runs = 0
        let flush = DeferredAction(loop: loop) { runs += 1 }
        var scheduledWhilePending = true
        let burst = Timer(loop: loop) {
            for _ in 0..<100 { flush.schedule() }
            scheduledWhilePending = flush.isScheduled
        }
        burst.schedule(milliseconds: 1)
        let again = Timer(loop: loop) {
            #expect(runs == 1)
            #expect(!flush.isScheduled)
            flush.schedule()
            flush.schedule()
        }
        again.schedule(milliseconds: 20)
        let end = Timer(loop: loop) { loop.stop() }
        end.schedule(milliseconds: 40)
        runLoop(loop, keeping: flush, burst, again, end)
        #expect(scheduledWhilePending)
        #expect(runs == 2)
    }

    @Test func signalIsDeliveredOnTheLoop() {
        let loop = EventLoop()
        let loopThread = pthread_self()
        var received: [Int32] = []
        var onLoopThread = false
        let watcher = SignalWatcher(loop: loop, signals: [SIGUSR1]) { signal in
            received.append(signal)
            onLoopThread = pthread_equal(pthread_self(), loopThread) != 0
            loop.stop()
        }
        // Process-directed: the test runs on a Dispatch worker thread, which blocks signals,
        // so raise() (directed at this thread) would stay pending forever.
        let trigger = Timer(loop: loop) { kill(getpid(), SIGUSR1) }
        trigger.schedule(milliseconds: 5)
        runLoop(loop, seconds: 3, keeping: watcher, trigger)
        #expect(received == [SIGUSR1])
        #expect(onLoopThread)
    }
}
