/// The bytes queued for output on all of a process's client connections, held to one
/// budget, plus a cap per connection. Output is counted exactly as libevent adds and drains
/// it. A connection that goes over a limit is not cut at once (a reader may only be busy for a
/// moment, and a burst of replies may leave in milliseconds): it is cut once its unsent output
/// has not shrunk over a whole `stallMs`, so a peer that reads its replies keeps its connection
/// and one that does not read them (or reads slower than it asks) loses it.
///
/// Way out of the check timer: it runs only while the budget or a cap is exceeded, and each
/// round either sees the output drain or disconnects the connections that did not drain, so
/// it stops once the connections causing the excess have read or are gone.
public final class OutputBudget {
    public var limitBytes: Int
    public var maxBytesPerConnection: Int
    public var stallMs: Double
    /// Bytes queued on all charged connections now.
    public private(set) var bufferedBytes = 0
    /// Connections cut for not reading, since the process started.
    public private(set) var disconnections = 0
    public var chargedConnections: Int { members.count }

    private var members: [ObjectIdentifier: WeakConnection] = [:]
    private let checkTimer: Timer
    /// Numbers the checks, so a connection's drain sample is compared only with the previous check's.
    private var round: UInt64 = 0
    private let log: RateLimitedLog

    private struct WeakConnection {
        weak var connection: Connection?
    }

    public init(loop: EventLoop, limits: ProcessLimits) {
        limitBytes = limits.clientOutputBudgetBytes
        maxBytesPerConnection = limits.maxOutputBytesPerClient
        stallMs = limits.outputStallMs
        log = loop.connectionLog
        checkTimer = Timer(loop: loop)
        checkTimer.action = { [weak self] in self?.check() }
    }

    var isExceeded: Bool { bufferedBytes > limitBytes }

    func register(_ connection: Connection) {
        members[ObjectIdentifier(connection)] = WeakConnection(connection: connection)
    }

    /// The connection is gone; whatever it still had queued is freed with it.
    func unregister(_ id: ObjectIdentifier, queuedBytes: Int) {
        members[id] = nil
        bufferedBytes -= queuedBytes
        assert(bufferedBytes >= 0, "output budget went negative")
    }

    func account(added: Int, drained: Int, connectionQueued: Int) {
        bufferedBytes += added - drained
        assert(bufferedBytes >= 0, "output budget went negative")
        if added > 0, bufferedBytes > limitBytes || connectionQueued > maxBytesPerConnection, !checkTimer.isScheduled {
            checkTimer.schedule(milliseconds: stallMs)
        }
    }

    /// One round: a connection over its cap, or any connection with output while the budget is
    /// exceeded, whose unsent output did not shrink since the previous round is disconnected
    /// (largest first, and for the budget only until it is met again).
    private func check() {
        round += 1
        var stalled: [Connection] = []
        var troubled = false
        for member in members.values {
            guard let connection = member.connection, !connection.isClosed else { continue }
            let queued = connection.outputBufferedBytes
            guard queued > 0 else { continue }
            let overCap = queued > maxBytesPerConnection
            if overCap || isExceeded {
                troubled = true
                if let sample = connection.budgetSample, sample.round == round - 1, queued >= sample.queued {
                    stalled.append(connection)
                }
            }
            connection.budgetSample = (round, queued)
        }
        stalled.sort { $0.outputBufferedBytes > $1.outputBufferedBytes }
        for connection in stalled {
            let queued = connection.outputBufferedBytes
            let overCap = queued > maxBytesPerConnection
            guard overCap || isExceeded else { continue }
            disconnections += 1
            log.log(.warning, key: "stalled",
                    "disconnecting \(connection.peer): its \(queued) unsent bytes did not shrink in \(Int(stallMs)) ms "
                    + (overCap ? "(over the \(maxBytesPerConnection)-byte cap per client)"
                               : "(all clients' output, \(bufferedBytes) bytes, is over the \(limitBytes)-byte budget)"))
            connection.disconnectForNotReading()
        }
        if troubled { checkTimer.schedule(milliseconds: stallMs) }
    }
}
