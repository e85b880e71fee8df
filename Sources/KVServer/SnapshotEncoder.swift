import Dispatch
import EventLoop
import KVStore
import Synchronization

/// Runs `KVDriverAction.encodeSnapshot` off the loop: encodes a copy-on-write copy of the state
/// machine on a global queue and posts what it produces (start, parts, end) to the loop's
/// mailbox. At most `OutgoingSnapshot.partsAhead` parts are handed over ahead of the driver's
/// `snapshotPartSent`; `cancel` stops it.
final class SnapshotEncoder {
    /// What the encoding thread reports, in order.
    enum Event: Sendable {
        case started(id: UInt64, index: UInt64, size: Int)
        case part(id: UInt64, [UInt8])
        case finished(id: UInt64, keys: Int, sessions: Int, duration: Duration)
    }

    /// What the encoding thread and the loop share: credits for parts (the thread waits for one
    /// before encoding each part; the loop returns one for each part sent) and a flag that
    /// stops the encoding when the snapshot is no longer wanted.
    final class Flow: Sendable {
        private let credits = DispatchSemaphore(value: OutgoingSnapshot.partsAhead)
        private let cancelled = Atomic<Bool>(false)

        /// On the encoding thread: waits until another part may be handed over; false once the
        /// snapshot was cancelled (the encoding then stops).
        func awaitTurn() -> Bool {
            credits.wait()
            return !cancelled.load(ordering: .acquiring)
        }

        func partSent() { credits.signal() }

        /// Stops the encoding: a thread waiting for its turn wakes and gives up.
        func cancel() {
            cancelled.store(true, ordering: .releasing)
            credits.signal()
        }
    }

    private let mailbox: LoopMailbox<Event>
    /// Encodings under way, by id.
    private var flows: [UInt64: Flow] = [:]

    init(loop: EventLoop, receive: @escaping (Event) -> Void) {
        mailbox = LoopMailbox(loop: loop, receive: receive)
    }

    func start(id: UInt64, machine frozen: KVStateMachine) {
        precondition(flows[id] == nil, "one encoding per id")
        let flow = Flow()
        flows[id] = flow
        let mailbox = mailbox
        DispatchQueue.global().async {
            let clock = ContinuousClock()
            let started = clock.now
            frozen.encodeSnapshot(size: { size in
                mailbox.post(.started(id: id, index: frozen.appliedIndex, size: size))
            }, part: { part in
                guard flow.awaitTurn() else { return false }
                mailbox.post(.part(id: id, part))
                return true
            })
            mailbox.post(.finished(id: id, keys: frozen.count, sessions: frozen.sessionCount, duration: clock.now - started))
        }
    }

    func partSent(id: UInt64) { flows[id]?.partSent() }

    func cancel(id: UInt64) { flows[id]?.cancel() }

    /// The encoding reported its end (on the loop).
    func finished(id: UInt64) { flows[id] = nil }
}
