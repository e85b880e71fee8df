import CLibevent
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Hands values from other threads to code on a loop's thread: `post` may be called from any
/// thread; `receive` runs on the loop, in posting order. Work that would stall the loop
/// (encoding or writing a snapshot) runs elsewhere and reports back through one of these.
public final class LoopMailbox<Value: Sendable>: @unchecked Sendable {
    // Safety of @unchecked: `pending` is behind a Mutex, and `wakeup.wake()` is a single
    // write(2); `receive` and the wakeup's event are used only on the loop's thread.
    private let pending = Mutex<[Value]>([])
    private let receive: (Value) -> Void
    private let wakeup: PipeWakeup

    public init(loop: EventLoop, receive: @escaping (Value) -> Void) {
        self.receive = receive
        wakeup = PipeWakeup(loop: loop)
        wakeup.onWake = { [unowned self] in self.deliver() }
    }

    /// Queues `value` for `receive` on the loop's thread. Callable from any thread.
    public func post(_ value: Value) {
        pending.withLock { $0.append(value) }
        wakeup.wake()
    }

    private func deliver() {
        let values = pending.withLock { queue -> [Value] in
            defer { queue.removeAll() }
            return queue
        }
        for value in values { receive(value) }
    }
}

/// A pipe whose read end is watched by the loop: a byte written from any thread runs
/// `onWake` on the loop's thread (several writes may be seen as one wakeup).
final class PipeWakeup {
    private let readFD: Int32
    private let writeFD: Int32
    private var event: OpaquePointer?
    /// Runs on the loop's thread after a wakeup (set by the owner once it exists).
    var onWake: () -> Void = {}
    /// Keeps the event base alive as long as this event exists.
    private let loop: EventLoop

    init(loop: EventLoop) {
        self.loop = loop
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe failed: errno \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        event = event_new(loop.base, readFD, Int16(EV_READ | EV_PERSIST), { _, _, ctx in
            Unmanaged<PipeWakeup>.fromOpaque(ctx!).takeUnretainedValue().woken()
        }, ctx)
        event_add(event, nil)
    }

    deinit {
        if let event {
            event_del(event)
            event_free(event)
        }
        Glibc.close(readFD)
        Glibc.close(writeFD)
    }

    /// Callable from any thread. A full pipe already holds a wakeup, so a failed write loses nothing.
    func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(writeFD, &byte, 1)
    }

    private func woken() {
        var drain = [UInt8](repeating: 0, count: 256)
        while Glibc.read(readFD, &drain, drain.count) == drain.count {}
        onWake()
    }
}
