import EventLoop
import Wire

/// Stands in for kvd on raftd apply sockets, for tests of raftd alone: records every
/// committed entry each raftd streams, and proposes commands. One loop, driven by the test.
///
/// Its "state machine" is the list of applied entries: asked for a snapshot, it sends that
/// list (encoded as a `CommittedEntries` message), and restoring from raftd's snapshot
/// replaces the list, so a test can check that snapshots carry exactly the applied history.
public final class ApplyProbe {
    public final class Link {
        public let node: Int
        let path: String
        var connection: Connection?
        var decoder = FrameDecoder(frameLimit: 64 << 20)
        /// Every entry received, in order, across reconnects.
        public private(set) var applied: [LogEntry] = []
        public internal(set) var leadership: Leadership?
        /// Proposal results by proposal id.
        public var results: [UInt64: ProposeResult] = [:]
        /// For each proposal id, how far this link had applied when its result arrived.
        public private(set) var appliedWhenResultArrived: [UInt64: UInt64] = [:]
        /// Set when raftd streamed an entry that did not follow the previous one.
        public private(set) var streamErrors: [String] = []
        /// Snapshots raftd sent us (restores) and asked us for.
        public private(set) var restores = 0
        public private(set) var snapshotRequests = 0
        /// When false, snapshot requests are counted but not answered (raftd then keeps its log).
        public var answersSnapshotRequests = true
        var snapshotIn = SnapshotAssembler()
        /// Refuse every snapshot raftd sends (as a kvd does with one it cannot decode).
        public var refusesSnapshots = false
        /// When each snapshot from raftd began (its chunk at offset 0), in monotonic ns.
        public private(set) var snapshotStarts: [UInt64] = []

        init(node: Int, path: String) {
            self.node = node
            self.path = path
        }

        public var lastApplied: UInt64 { applied.last?.index ?? 0 }

        /// Forgets everything applied, as a kvd that lost its state (its next hello says 0).
        public func forgetApplied() { applied = [] }
        public var isConnected: Bool { connection.map { !$0.isClosed && $0.isConnected } ?? false }

        func receive(_ message: RaftToKvd) {
            switch message {
            case let .committed(entries):
                for entry in entries {
                    if entry.index != lastApplied + 1 {
                        streamErrors.append("node \(node): entry \(entry.index) after \(lastApplied)")
                    }
                    applied.append(entry)
                }
            case let .leadership(l): leadership = l
            case let .results(list):
                for r in list {
                    results[r.proposalID] = r
                    appliedWhenResultArrived[r.proposalID] = lastApplied
                }
            case .status, .memberAnswer: break
            case let .snapshot(chunk):
                if chunk.offset == 0 { snapshotStarts.append(EventLoop.monotonicNanos()) }
                if refusesSnapshots {
                    if chunk.offset == 0 {
                        connection?.write(KvdToRaft.snapshotRejected(index: chunk.index, reason: "the test's stand-in refuses it",
                                                                     lastApplied: lastApplied).framed())
                    }
                    return
                }
                do {
                    guard let complete = try snapshotIn.add(chunk) else { return }
                    guard case let .committed(entries) = try RaftToKvd(serialized: complete.data),
                          entries.last?.index ?? 0 == complete.index else {
                        return streamErrors.append("node \(node): snapshot at \(complete.index) does not hold the applied entries up to it")
                    }
                    applied = entries
                    restores += 1
                } catch {
                    streamErrors.append("node \(node): bad snapshot from raftd: \(error)")
                }
            case .snapshotRequest:
                snapshotRequests += 1
                guard answersSnapshotRequests else { return }
                let data = RaftToKvd.committed(applied).serialized()
                var chunker = SnapshotChunker(index: lastApplied, term: 0, data: data, chunkSize: 64 << 10)
                while let chunk = chunker.next() { connection?.write(KvdToRaft.snapshot(chunk).framed()) }
            case .readResults:
                break  // the probe never asks for reads
            }
        }
    }

    let loop = EventLoop()
    public private(set) var links: [Int: Link] = [:]
    private var nextProposalID: UInt64 = 1

    public init(sockets: [Int: String]) {
        for (node, path) in sockets { links[node] = Link(node: node, path: path) }
    }

    /// A probe on every apply socket of `cluster` (started with `raftdsOnly`).
    public convenience init(cluster: LocalCluster) {
        self.init(sockets: Dictionary(uniqueKeysWithValues: (1...cluster.options.nodes).map { ($0, cluster.applySocket($0)) }))
    }

    /// (Re)connects every disconnected link, saying hello with what it already has.
    public func connectAll() {
        for link in links.values where !link.isConnected { connect(link) }
    }

    private func connect(_ link: Link) {
        guard let connection = try? Connection.connect(loop: loop, to: .unix(path: link.path)) else { return }
        link.connection = connection
        link.decoder = FrameDecoder(frameLimit: 64 << 20)
        link.snapshotIn = SnapshotAssembler()
        connection.onRead = { [weak link] conn in
            guard let link else { return }
            link.decoder.withAppendableBuffer { _ = conn.readAvailable(appendingTo: &$0) }
            while let frame = try? link.decoder.nextFrame(), let message = try? RaftToKvd(serialized: frame) {
                link.receive(message)
            }
        }
        connection.onClose = { [weak link] _, _ in
            link?.connection = nil
            link?.leadership = nil  // stale once the link is gone
        }
        connection.write(KvdToRaft.hello(lastApplied: link.lastApplied).framed())
    }

    public func disconnect(_ node: Int) {
        links[node]?.connection?.close()
        links[node]?.connection = nil
        links[node]?.leadership = nil
    }

    /// Proposes `commands` through node's raftd; returns the proposal ids.
    @discardableResult
    public func propose(on node: Int, _ commands: [[UInt8]]) -> [UInt64] {
        guard let link = links[node], let connection = link.connection else { return [] }
        let proposals = commands.map { data -> Proposal in
            defer { nextProposalID += 1 }
            return Proposal(proposalID: nextProposalID, data: data)
        }
        connection.write(KvdToRaft.propose(proposals).framed())
        return proposals.map(\.proposalID)
    }

    /// Runs the loop until `done` holds or `timeoutMs` passes; reconnects dropped links
    /// along the way. Returns whether `done` held.
    @discardableResult
    public func run(timeoutMs: Double, until done: () -> Bool) -> Bool {
        let deadline = EventLoop.monotonicNanos() + UInt64(timeoutMs * 1_000_000)
        let tick = Timer(loop: loop, repeating: true) {}
        tick.schedule(milliseconds: 5)
        defer { tick.cancel() }
        var lastReconnect: UInt64 = 0
        while !done() {
            let now = EventLoop.monotonicNanos()
            if now >= deadline { return false }
            if now - lastReconnect > 50_000_000 {
                connectAll()
                lastReconnect = now
            }
            loop.runOnce(blocking: true)
        }
        return true
    }

    /// The node whose raftd says it leads, if any.
    public var leader: Int? {
        links.values.filter { $0.isConnected && $0.leadership?.isLeader == true }
            .max { ($0.leadership?.term ?? 0) < ($1.leadership?.term ?? 0) }?.node
    }
}
