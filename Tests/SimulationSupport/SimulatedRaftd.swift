import Logging
import Raft
import RaftServer
import SeededRandom
import Wire

/// One raftd in a simulation: the real `RaftDriver` (with a real `RaftNode`) on a
/// `SimulatedDisk`, its peer messages collected for the network, its kvd link a queue of
/// frames read by the node's `SimulatedKvd`. A crash throws the driver away and keeps only
/// what the disk keeps; a restart rebuilds both from it.
public final class SimulatedRaftd: RaftDriverIO {
    public let id: UInt64
    public let peers: [UInt64]
    public let config: RaftDriverConfig
    public let disk = SimulatedDisk()
    public let kvd: SimulatedKvd
    public private(set) var driver: RaftDriver?
    /// Messages the driver sent since the simulation last collected them.
    public var outbox: [Message] = []
    /// Frames on their way to kvd (the link's buffer); writable below `kvdQueueLimit`.
    public private(set) var toKvd: [RaftToKvd] = []
    public var kvdQueueLimit = 6
    public private(set) var kvdLinkUp = false
    public private(set) var shutdownFinishedCount = 0
    public private(set) var persistFailure: String?
    /// Set when the driver closed the kvd link (a protocol violation by the fake kvd).
    public private(set) var kvdClosedByRaftd = 0
    /// The driver's I/O and disk calls in order, when `recording` (for tests that check order).
    public var journal: [String] = []
    public var recording = false {
        didSet { disk.onWrite = recording ? { [unowned self] in self.journal.append($0) } : nil }
    }
    public var electionTicks = 10
    public var heartbeatTicks = 2
    private let logger: Logger

    public init(id: UInt64, peers: [UInt64], config: RaftDriverConfig, logger: Logger = Logger(label: "sim", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.id = id
        self.peers = peers
        self.config = config
        self.logger = logger
        kvd = SimulatedKvd(nodeID: id)
    }

    public var isUp: Bool { driver != nil }

    /// Starts (or restarts) raftd from what the disk holds.
    public func start(now: UInt64, seed: UInt64) {
        precondition(driver == nil, "node \(id) is already running")
        let image = disk.durable
        var raftConfig = RaftConfig(id: id, peers: peers)
        raftConfig.electionTicks = electionTicks
        raftConfig.heartbeatTicks = heartbeatTicks
        raftConfig.randomSeed = seed
        let durableCommit = max(min(image.hardState.commit, image.lastIndex), image.offset)
        let node = RaftNode(config: raftConfig, hardState: image.hardState, snapshot: image.snapshot,
                            entries: image.entries, applied: durableCommit)
        driver = RaftDriver(config: config, node: node, hardState: image.hardState, durableCommit: durableCommit,
                            lastSnapshotBytes: disk.snapshotFile?.data.count ?? 0, log: disk, snapshots: disk, io: self,
                            logger: logger, now: now)
    }

    /// kvd connects and says hello; returns nothing (the driver answers through `toKvd`).
    public func connectKvd(now: UInt64) {
        guard let driver, !kvdLinkUp else { return }
        kvdLinkUp = true
        toKvd.removeAll()
        driver.kvdConnected()
        driver.kvdReceived(.hello(lastApplied: kvd.lastApplied), now: now)
    }

    public func disconnectKvd() {
        guard kvdLinkUp else { return }
        kvdLinkUp = false
        toKvd.removeAll()
        kvd.disconnected()
        driver?.kvdDisconnected()
    }

    /// The process died: the driver and its unsynced writes are gone; kvd's link drops.
    public func crash(random: inout SeededGenerator, keepSomeUnsynced: Bool) {
        if kvdLinkUp {
            kvdLinkUp = false
            toKvd.removeAll()
            kvd.disconnected()
        }
        driver = nil
        outbox.removeAll()
        persistFailure = nil
        disk.crash(random: &random, keepSomeUnsynced: keepSomeUnsynced)
    }

    /// kvd reads up to `count` frames and answers them; tells the driver when the link drained.
    public func kvdReads(_ count: Int, now: UInt64) {
        guard kvdLinkUp, let driver, count > 0, !toKvd.isEmpty else { return }
        let wasFull = !kvdIsWritable
        let frames = toKvd.prefix(count)
        toKvd.removeFirst(frames.count)
        for frame in frames {
            for answer in kvd.receive(frame) where kvdLinkUp {
                driver.kvdReceived(answer, now: now)
            }
        }
        if wasFull, kvdLinkUp, toKvd.count <= kvdQueueLimit / 2 { driver.kvdWritable(now: now) }
    }

    // MARK: RaftDriverIO

    public func sendToPeers(_ messages: [Message], flushNow: Bool) {
        if recording, !messages.isEmpty { journal.append("send \(messages.map { "\($0.type)" }.joined(separator: ","))") }
        outbox.append(contentsOf: messages)
    }

    public var kvdIsWritable: Bool { kvdLinkUp && toKvd.count < kvdQueueLimit }

    public func sendToKvd(_ messages: [RaftToKvd]) {
        guard kvdLinkUp else { return }
        if recording { journal.append("kvd \(messages.count)") }
        toKvd.append(contentsOf: messages)
    }

    public func closeKvd() {
        kvdClosedByRaftd += 1
        kvdLinkUp = false
        toKvd.removeAll()
        kvd.disconnected()
    }

    public func configurationChanged(_ configuration: Configuration) {}

    public func shutdownFinished() { shutdownFinishedCount += 1 }

    public func persistFailed(_ error: any Error) { persistFailure = "\(error)" }
}

extension SimulatedRaftd {
    /// Drops the frames queued to kvd unread (tests that look at what raftd sent).
    public func clearKvdQueue(keepingLeadership: Bool = false) {
        toKvd.removeAll()
    }
}
