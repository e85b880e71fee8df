@testable import KVServer
import Logging
import Raft
@testable import RaftServer
import SeededRandom
import SimulationSupport
import Wire

/// One node of the whole-node simulation: raftd (the real `RaftDriver` on a `SimulatedDisk`)
/// and kvd (the real `KVDriver`), joined by a simulated apply socket: two queues of frames,
/// each with the flow control of the real link (raftd's side writable below `toKvdLimit`
/// frames, kvd's side by bytes below `toRaftHighWater`), which a reset or a crash of either
/// end empties. The node only holds state and implements raftd's I/O; `WholeNodeSimulation`
/// decides what happens when.
final class WholeNode: RaftDriverIO {
    /// The snapshot encoder of kvd's shell, done in simulation: the state machine copy is
    /// encoded at once, its reports (started, parts, finished) are handed over later, at most
    /// `OutgoingSnapshot.partsAhead` parts ahead of `snapshotPartSent`, as `SnapshotEncoder` does.
    struct Encoding {
        let id: UInt64
        let index: UInt64
        let size: Int
        let parts: [[UInt8]]
        var nextPart = 0
        var credits = OutgoingSnapshot.partsAhead
        var started = false
        var cancelled = false
        /// No report before this time (the thread takes a while).
        var readyAt: UInt64
    }

    let id: UInt64
    let peers: [UInt64]
    let raftConfig: RaftDriverConfig
    let kvdConfig: KVDriverConfig
    let disk = SimulatedDisk()
    private(set) var raft: RaftDriver?
    var kvd: KVDriver?
    /// Peer messages the driver sent since the simulation collected them.
    var outbox: [Message] = []
    /// Peer messages that arrived while raftd was frozen.
    var heldDeliveries: [SimulatedPeerNetwork.Delivery] = []

    // The apply link.
    private(set) var linkUp = false
    var toKvd: [RaftToKvd] = []
    var toRaft: [KvdToRaft] = []
    var toRaftBytes = 0
    static let toKvdLimit = 6
    static let toRaftHighWater = 2_048
    /// Backed-up ends, to tell the writer when the reader drained them.
    var raftSawFull = false
    var kvdSawFull = false
    /// kvd dials raftd again at this time (a dial to a raftd that is down fails and retries).
    var redialAt: UInt64?
    private(set) var closedByRaftd = 0
    private(set) var persistFailure: String?

    // kvd's shell.
    var kvdTimerAt: UInt64?
    var passEndDue = false
    var encodings: [Encoding] = []

    // Faults.
    var raftFrozenUntil: UInt64 = 0
    var kvdFrozenUntil: UInt64 = 0
    var raftDownUntil: UInt64?
    var kvdDownUntil: UInt64?
    /// Cut off from the gateways until then (frames wait; some links are reset).
    var gatewayCutUntil: UInt64 = 0

    private let logger = Logger(label: "whole-sim", factory: { _ in SwiftLogNoOpLogHandler() })

    init(id: UInt64, peers: [UInt64], raftConfig: RaftDriverConfig, kvdConfig: KVDriverConfig) {
        self.id = id
        self.peers = peers
        self.raftConfig = raftConfig
        self.kvdConfig = kvdConfig
    }

    var raftIsUp: Bool { raft != nil }
    func raftFrozen(_ now: UInt64) -> Bool { now < raftFrozenUntil }
    func kvdFrozen(_ now: UInt64) -> Bool { now < kvdFrozenUntil }

    /// Starts (or restarts) raftd from what its disk holds (as `SimulatedRaftd.start`).
    func startRaft(now: UInt64, seed: UInt64) {
        precondition(raft == nil, "raftd \(id) is already running")
        let image = disk.durable
        var config = RaftConfig(id: id, peers: peers)
        config.electionTicks = 10
        config.heartbeatTicks = 2
        config.randomSeed = seed
        if raftConfig.readMode == .lease {
            config.readLease = ReadLease.longest(electionTicks: config.electionTicks, tickNanos: raftConfig.tick.wholeNanoseconds, driftBound: 0.1)
        }
        let durableCommit = max(min(image.hardState.commit, image.lastIndex), image.offset)
        let node = RaftNode(config: config, hardState: image.hardState, snapshot: image.snapshot,
                            entries: image.entries, applied: durableCommit)
        raft = RaftDriver(config: raftConfig, node: node, hardState: image.hardState, durableCommit: durableCommit,
                          lastSnapshotBytes: disk.snapshotFile?.data.count ?? 0, log: disk, snapshots: disk, io: self,
                          logger: logger, now: now)
    }

    /// raftd dies: its driver and unsynced writes are gone. The caller drops the apply link first.
    func crashRaft(random: inout SeededGenerator) {
        precondition(!linkUp, "drop the apply link before raftd dies")
        raft = nil
        outbox.removeAll()
        heldDeliveries.removeAll()
        persistFailure = nil
        raftFrozenUntil = 0
        disk.crash(random: &random, keepSomeUnsynced: true)
    }

    /// The apply link comes up: both queues start empty.
    func linkOpened() {
        precondition(!linkUp && raft != nil && kvd != nil, "the link needs both ends")
        linkUp = true
        toKvd.removeAll()
        toRaft.removeAll()
        toRaftBytes = 0
        raftSawFull = false
        kvdSawFull = false
    }

    /// The apply link is gone, with what was on it.
    func linkClosed() {
        linkUp = false
        toKvd.removeAll()
        toRaft.removeAll()
        toRaftBytes = 0
    }

    /// kvd's view of its link's room (`KVServer.room`).
    var kvdRoom: Int { linkUp && toRaftBytes <= Self.toRaftHighWater ? Self.toRaftHighWater + 1 - toRaftBytes : 0 }

    static func size(of message: KvdToRaft) -> Int {
        switch message {
        case let .snapshot(chunk): chunk.data.count + 32
        case let .propose(list): list.reduce(16) { $0 + $1.data.count + 16 }
        case let .read(ids): 16 + 8 * ids.count
        default: 32
        }
    }

    // MARK: RaftDriverIO

    func sendToPeers(_ messages: [Message], flushNow: Bool) { outbox.append(contentsOf: messages) }

    var kvdIsWritable: Bool { linkUp && toKvd.count < Self.toKvdLimit }

    func sendToKvd(_ messages: [RaftToKvd]) {
        guard linkUp else { return }
        toKvd.append(contentsOf: messages)
    }

    /// raftd closes the link (kvd broke the apply protocol); kvd's shell sees the connection end.
    func closeKvd() {
        closedByRaftd += 1
        linkClosed()
    }

    func configurationChanged(_ configuration: Configuration) {}
    func shutdownFinished() {}
    func persistFailed(_ error: any Error) { persistFailure = "\(error)" }
}
