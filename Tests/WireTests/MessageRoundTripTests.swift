import Testing
import Wire
import Raft
import SeededRandom

/// Random message builders, all driven by a seeded generator.
extension RandomNumberGenerator {
    mutating func op() -> Op {
        Op(rawValue: Int32.random(in: -1...6, using: &self))
    }

    mutating func status() -> Status {
        Status(rawValue: Int32.random(in: -1...8, using: &self))
    }

    mutating func kvRequest() -> KvRequest {
        KvRequest(requestID: varintValue(), clientID: varintValue(), seq: varintValue(), op: op(),
                  key: bytes(upTo: 32), value: bytes(), watchLeadership: bool())
    }

    mutating func nodeStatus() -> NodeStatus {
        NodeStatus(nodeID: varintValue(), reachable: bool(),
                   role: ["", "leader", "follower", "candidate", "pre-candidate"].randomElement(using: &self)!,
                   term: varintValue(), leaderID: varintValue(), commitIndex: varintValue(), appliedIndex: varintValue(),
                   address: string(), error: string(), fsyncs: varintValue(), lastIndex: varintValue(), snapshotIndex: varintValue())
    }

    mutating func kvResponse() -> KvResponse {
        KvResponse(requestID: varintValue(), status: status(), value: bytes(), leaderHint: string(), message: string(),
                   nodes: (0..<Int.random(in: 0...5, using: &self)).map { _ in nodeStatus() }, leaderTerm: varintValue())
    }

    mutating func logEntry() -> LogEntry {
        let noop = Int.random(in: 0..<4, using: &self) == 0
        return LogEntry(term: varintValue(), index: varintValue(), isNoop: noop, data: noop ? [] : bytes())
    }

    mutating func snapshotChunk() -> SnapshotChunk {
        SnapshotChunk(index: varintValue(), term: varintValue(), offset: varintValue(), totalSize: varintValue(), data: bytes())
    }

    mutating func peerMessage() -> PeerMessage {
        PeerMessage(clusterID: varintValue(), from: varintValue(), to: varintValue(),
                    type: PeerMessageType(rawValue: UInt32.random(in: 0...10, using: &self)), term: varintValue(),
                    logTerm: varintValue(), index: varintValue(), commit: varintValue(),
                    entries: (0..<Int.random(in: 0...8, using: &self)).map { _ in logEntry() },
                    reject: bool(), rejectHint: varintValue(), rejectTerm: varintValue(), transfer: bool(),
                    snapshot: bool() ? snapshotChunk() : nil, stateMachineDetached: bool(), senderDataDirID: varintValue(),
                    recipientDataDirID: varintValue(),
                    knownDataDirs: Dictionary((0..<Int.random(in: 0...4, using: &self)).map { _ in (varintValue(), varintValue()) },
                                              uniquingKeysWith: { first, _ in first }))
    }

    mutating func command() -> Command {
        Command(clientID: varintValue(), seq: varintValue(), op: op(), key: bytes(upTo: 32), value: bytes())
    }

    mutating func commandBatch() -> CommandBatch {
        CommandBatch(timestampMs: varintValue(), commands: (0..<Int.random(in: 0...6, using: &self)).map { _ in command() })
    }

    mutating func kvdToRaft() -> KvdToRaft {
        switch Int.random(in: 0..<4, using: &self) {
        case 0: return .hello(lastApplied: varintValue())
        case 1: return .propose((0..<Int.random(in: 0...5, using: &self)).map { _ in Proposal(proposalID: varintValue(), data: bytes()) })
        case 2: return .snapshot(snapshotChunk())
        default: return .statusQuery(queryID: varintValue())
        }
    }

    mutating func raftToKvd() -> RaftToKvd {
        switch Int.random(in: 0..<6, using: &self) {
        case 4: return .snapshot(snapshotChunk())
        case 5: return .snapshotRequest(appliedAtLeast: varintValue())
        case 0: return .committed((0..<Int.random(in: 0...6, using: &self)).map { _ in logEntry() })
        case 1: return .results((0..<Int.random(in: 0...5, using: &self)).map { _ in
            ProposeResult(proposalID: varintValue(), accepted: bool(), index: varintValue(), term: varintValue(), leaderID: varintValue())
        })
        case 2: return .leadership(Leadership(term: varintValue(), leaderID: varintValue(), isLeader: bool()))
        default: return .status(queryID: varintValue(), nodeStatus())
        }
    }
}

@Suite("Message round trips through protobuf-c")
struct MessageRoundTripTests {
    /// Round-trips `count` random values of one type, both unframed and framed.
    private func checkRandom<M: WireMessage & Equatable>(
        _ salt: UInt64, count: Int = 300, _ make: (inout SeededGenerator) -> M
    ) throws {
        var (seed, rng) = TestSeed.generator(salt)
        for i in 0..<count {
            let message = make(&rng)
            #expect(try roundTrip(message) == message, "seed \(seed), message \(i): \(message)")

            var decoder = FrameDecoder()
            decoder.append(message.framed())
            let body = try #require(try decoder.nextFrame(), "seed \(seed), message \(i)")
            #expect(try M(serialized: body) == message, "seed \(seed), message \(i) (framed)")
        }
    }

    @Test func randomKvRequests() throws { try checkRandom(10) { $0.kvRequest() } }
    @Test func randomKvResponses() throws { try checkRandom(11) { $0.kvResponse() } }
    @Test func randomNodeStatuses() throws { try checkRandom(12) { $0.nodeStatus() } }
    @Test func randomPeerMessages() throws { try checkRandom(13) { $0.peerMessage() } }
    @Test func randomCommandBatches() throws { try checkRandom(14) { $0.commandBatch() } }
    @Test func randomKvdToRaft() throws { try checkRandom(15) { $0.kvdToRaft() } }
    @Test func randomRaftToKvd() throws { try checkRandom(16) { $0.raftToKvd() } }

    @Test("all-default values round-trip and encode to nothing (or only the oneof tag)")
    func defaults() throws {
        #expect(try roundTrip(KvRequest()) == KvRequest())
        #expect(try roundTrip(KvResponse()) == KvResponse())
        #expect(try roundTrip(NodeStatus()) == NodeStatus())
        #expect(try roundTrip(PeerMessage()) == PeerMessage())
        #expect(try roundTrip(CommandBatch(timestampMs: 0, commands: [])) == CommandBatch(timestampMs: 0, commands: []))
        #expect(KvResponse().serialized() == [])
        #expect(NodeStatus().serialized() == [])
        #expect(PeerMessage().serialized() == [])
    }

    /// Key/value shapes worth a dedicated check. (An enum rather than raw arrays so the test
    /// log does not print a megabyte of bytes per case.)
    enum Payload: String, CaseIterable, Sendable {
        case empty, onlyNULs, embeddedNULs, oneMiBValue, oneMiBKeyOfNULs

        var keyAndValue: (key: [UInt8], value: [UInt8]) {
            switch self {
            case .empty: ([], [])
            case .onlyNULs: ([0], [0, 0, 0])
            case .embeddedNULs: (Array("a\u{0}b\u{0}".utf8), Array("\u{0}value".utf8))
            case .oneMiBValue: (Array("k".utf8), [UInt8](repeating: 0xAB, count: 1 << 20))
            case .oneMiBKeyOfNULs: ([UInt8](repeating: 0, count: 1 << 20), [])
            }
        }
    }

    @Test("empty, 1 MiB and NUL-containing keys and values", arguments: Payload.allCases)
    func extremeKeysAndValues(payload: Payload) throws {
        let (key, value) = payload.keyAndValue
        let request = KvRequest(requestID: 1, clientID: 2, seq: 3, op: .put, key: key, value: value)
        #expect(try roundTrip(request) == request)

        let batch = CommandBatch(timestampMs: 5, commands: [Command(clientID: 1, seq: 1, op: .put, key: key, value: value)])
        #expect(try roundTrip(batch) == batch)

        // Packing a MiB costs ~0.3 s in debug builds: the other carriers of opaque bytes get
        // the small payloads only (a 1 MiB KvResponse is covered by largeValueFramed).
        guard key.count + value.count < 1 << 16 else { return }
        let response = KvResponse(requestID: 1, status: .ok, value: value)
        #expect(try roundTrip(response) == response)

        let entry = LogEntry(term: 1, index: 1, data: value)
        #expect(try roundTrip(PeerMessage(type: .append, entries: [entry])).entries == [entry])
        #expect(try roundTrip(KvdToRaft.propose([Proposal(proposalID: 1, data: value)])) == .propose([Proposal(proposalID: 1, data: value)]))
    }

    @Test("a 1 MiB value survives framing and FrameDecoder")
    func largeValueFramed() throws {
        var (_, rng) = TestSeed.generator(20)
        let response = KvResponse(requestID: 42, value: rng.bytes(count: 1 << 20))
        var decoder = FrameDecoder()
        let stream = response.framed()
        // Deliver it in 64 KiB reads, as a socket would.
        var offset = 0
        var body: ArraySlice<UInt8>?
        while body == nil {
            #expect(offset < stream.count, "frame not complete after all bytes")
            let end = min(offset + 65_536, stream.count)
            decoder.append(stream[offset..<end])
            offset = end
            body = try decoder.nextFrame()
        }
        #expect(offset == stream.count)
        #expect(try KvResponse(serialized: try #require(body)) == response)
    }

    static let allOps: [Op] = [.get, .put, .append, .delete, .status, .member, Op(rawValue: 6), Op(rawValue: 99), Op(rawValue: Int32.max),
                               Op(rawValue: -1), Op(rawValue: Int32.min)]

    @Test func memberCommandsAndAnswersRoundTrip() throws {
        let command = MemberCommand(action: .add, id: 4, raftAddress: "10.0.0.4:7004", kvdAddress: "10.0.0.4:9004", learnerOnly: true, force: true)
        #expect(try roundTrip(KvRequest(requestID: 3, op: .member, member: command)).member == command)
        var response = KvResponse(requestID: 3, status: .ok)
        response.members = [MemberInfo(id: 1, raftAddress: "a:1", kvdAddress: "b:2", voter: true, matchIndex: 9, reachable: true),
                            MemberInfo(id: 4, voter: false, autoPromote: true)]
        response.configurationIndex = 12
        #expect(try roundTrip(response) == response)
        #expect(try roundTrip(KvdToRaft.memberCommand(queryID: 7, command)) == .memberCommand(queryID: 7, command))
        let answer = MemberAnswer(ok: false, error: "no", members: response.members, configurationIndex: 12)
        #expect(try roundTrip(RaftToKvd.memberAnswer(queryID: 7, answer)) == .memberAnswer(queryID: 7, answer))
        var peer = PeerMessage(clusterID: 1, from: 1, to: 2, type: .snapshot, entries: [LogEntry(term: 1, index: 2, isConfig: true, data: [1, 2])])
        peer.snapshotConfiguration = [9, 8, 7]
        #expect(try roundTrip(peer) == peer)
    }

    @Test("every op value, known or not, survives encode and decode", arguments: allOps)
    func opValues(op: Op) throws {
        let request = KvRequest(requestID: 1, op: op, key: [1])
        let decoded = try roundTrip(request)
        #expect(decoded.op == op)
        #expect(decoded.op.isKnown == (0...5).contains(op.rawValue))

        let batch = CommandBatch(timestampMs: 1, commands: [Command(clientID: 1, seq: 1, op: op, key: [1])])
        #expect(try roundTrip(batch).commands.first?.op == op)
    }

    @Test("an unknown op value 99 decodes as op(99) so the server can refuse it")
    func unknownOp99() throws {
        // request_id=5, op=99 hand-encoded: field 4 varint 0x63.
        let decoded = try KvRequest(serialized: [0x08, 0x05, 0x20, 0x63])
        #expect(decoded.requestID == 5)
        #expect(decoded.op == Op(rawValue: 99))
        #expect(!decoded.op.isKnown)
        #expect(decoded.op.description == "op(99)")
    }

    @Test("every status value survives encode and decode", arguments: [
        Status.ok, .noKey, .wrongLeader, .timeout, .badRequest, .unavailable, .sessionExpired, Status(rawValue: 99), Status(rawValue: -1),
    ])
    func statusValues(status: Status) throws {
        let response = KvResponse(requestID: 3, status: status, leaderHint: "n1:7000", message: "why")
        #expect(try roundTrip(response) == response)
    }

    @Test("every PeerMessageType value survives encode and decode", arguments: Array(UInt32(0)...10) + [UInt32.max])
    func peerMessageTypes(raw: UInt32) throws {
        let message = PeerMessage(clusterID: 1, from: 1, to: 2, type: PeerMessageType(rawValue: raw), term: 4)
        #expect(try roundTrip(message) == message)
    }

    @Test("PeerMessage with 0, 1 and many entries, noop and normal", arguments: [0, 1, 2, 500])
    func peerMessageEntries(count: Int) throws {
        var (seed, rng) = TestSeed.generator(30 + UInt64(count))
        let entries: [LogEntry] = (0..<count).map { (i: Int) -> LogEntry in
            let index = UInt64(100 + i)
            if i % 3 == 0 { return LogEntry(term: 7, index: index, isNoop: true) }
            return LogEntry(term: 7, index: index, data: rng.bytes())
        }
        let message = PeerMessage(clusterID: 0xC1, from: 1, to: 3, type: .append, term: 7, logTerm: 6, index: 99,
                                  commit: 98, entries: entries, reject: false)
        let decoded = try roundTrip(message)
        #expect(decoded == message, "seed \(seed)")
        #expect(decoded.entries.map { $0.isNoop } == entries.map { $0.isNoop })

        let rejection = PeerMessage(clusterID: 0xC1, from: 3, to: 1, type: .appendResponse, term: 7, index: 99,
                                    reject: true, rejectHint: 50, rejectTerm: 5)
        #expect(try roundTrip(rejection) == rejection)
    }

    @Test("KvResponse carries NodeStatus lists for OP_STATUS", arguments: [0, 1, 3, 64])
    func nodeStatusLists(count: Int) throws {
        let nodes: [NodeStatus] = (0..<count).map { (i: Int) -> NodeStatus in
            let role = i == 0 ? "leader" : "follower"
            let error = i % 2 == 0 ? "" : "connection refused — ✗"
            return NodeStatus(nodeID: UInt64(i + 1), reachable: i % 2 == 0, role: role, term: 12, leaderID: 1,
                              commitIndex: 1000, appliedIndex: 999, address: "10.0.0.\(i):7000", error: error)
        }
        let response = KvResponse(requestID: 77, status: .ok, nodes: nodes)
        let decoded = try roundTrip(response)
        #expect(decoded == response)
        #expect(decoded.nodes.count == count)
    }

    @Test("every KvdToRaft case round-trips", arguments: [
        KvdToRaft.hello(lastApplied: 0), .hello(lastApplied: UInt64.max), .propose([]),
        .propose([Proposal(proposalID: 1, data: [])]),
        .propose([Proposal(proposalID: 1, data: [0]), Proposal(proposalID: UInt64.max, data: Array("set x".utf8))]),
        .statusQuery(queryID: 0), .statusQuery(queryID: 12345),
    ])
    func kvdToRaftCases(message: KvdToRaft) throws {
        #expect(try roundTrip(message) == message)
    }

    @Test("every RaftToKvd case round-trips", arguments: [
        RaftToKvd.committed([]), .committed([LogEntry(term: 1, index: 1, isNoop: true)]),
        .committed([LogEntry(term: 1, index: 1, isNoop: true), LogEntry(term: 1, index: 2, data: [1, 0, 2])]),
        .results([]), .results([ProposeResult(proposalID: 1, accepted: true, index: 5, term: 2)]),
        .results([ProposeResult(proposalID: 2, accepted: false, leaderID: 3), ProposeResult(proposalID: 3, accepted: false)]),
        .leadership(Leadership(term: 0, leaderID: 0, isLeader: false)),
        .leadership(Leadership(term: 9, leaderID: 2, isLeader: true)),
        .status(queryID: 0, NodeStatus()),
        .status(queryID: 4, NodeStatus(nodeID: 2, reachable: true, role: "leader", term: 9, leaderID: 2,
                                       commitIndex: 10, appliedIndex: 10, address: "/tmp/raft.sock", error: "")),
    ])
    func raftToKvdCases(message: RaftToKvd) throws {
        #expect(try roundTrip(message) == message)
    }
}
