import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing
import Wire

/// Real kvd processes fed one log by the test's stand-in raftd (`KvdHarness`): session
/// expiry with a lost reply, limits that come from the log rather than each kvd's flags, and
/// a snapshot kvd must refuse.
@Suite(.serialized) struct KvdSessionTests {
    /// One stand-in log streamed to a leading kvd and a follower kvd alike.
    final class TwoReplicas {
        let leader: KvdHarness
        let follower: KvdHarness
        private var next: UInt64 = 1
        private var nextRequestID: UInt64 = 1

        init(leaderArguments: [String], followerArguments: [String]) throws {
            leader = try KvdHarness(arguments: leaderArguments)
            do {
                follower = try KvdHarness(arguments: followerArguments)
            } catch {
                leader.shutdown()
                throw error
            }
        }

        func shutdown() {
            leader.shutdown()
            follower.shutdown()
        }

        /// Appends an entry of term 1 and streams it to both kvds (telling the leader where
        /// its proposal landed first).
        func commit(_ data: [UInt8], isNoop: Bool = false, proposalID: UInt64? = nil) {
            let entry = LogEntry(term: 1, index: next, isNoop: isNoop, data: data)
            next += 1
            if let proposalID {
                leader.send(.results([ProposeResult(proposalID: proposalID, accepted: true, index: entry.index, term: 1)]))
            }
            leader.send(.committed([entry]))
            follower.send(.committed([entry]))
        }

        /// Sends `op` through the leading kvd, commits the entry it proposes, and returns the reply.
        func run(_ op: Op, _ key: String, _ value: String = "", client: UInt64, seq: UInt64) throws -> KvResponse {
            let requestID = nextRequestID
            nextRequestID += 1
            let proposed = leader.proposals.count
            try leader.request(KvRequest(requestID: requestID, clientID: client, seq: seq, op: op,
                                         key: Array(key.utf8), value: Array(value.utf8)))
            try #require(leader.run(timeoutMs: 5_000) { leader.proposals.count == proposed + 1 }, "\(leader.kvdLog)")
            let proposal = leader.proposals[proposed]
            commit(proposal.data, proposalID: proposal.proposalID)
            try #require(leader.run(timeoutMs: 5_000) { leader.replies[requestID] != nil }, "\(leader.kvdLog)")
            return leader.replies[requestID]!
        }

        /// Both kvds' snapshots of their state once every entry so far is applied.
        func snapshots() throws -> (leader: [UInt8], follower: [UInt8]) {
            let index = next - 1
            leader.requestSnapshot()
            follower.requestSnapshot()
            try #require(leader.run(timeoutMs: 5_000) { leader.snapshots[index] != nil }, "\(leader.kvdLog)")
            try #require(follower.run(timeoutMs: 5_000) { follower.snapshots[index] != nil }, "\(follower.kvdLog)")
            return (leader.snapshots[index]!, follower.snapshots[index]!)
        }
    }

    /// The issue's scenario through kvd: the leader's kvd runs with `--session-timeout-s 2`,
    /// the follower's with the default hour. Client 7 appends "a" (seq 1) and "b" (seq 2),
    /// the reply to seq 2 is lost, other clients write for more than 2 s, and seq 2 is sent
    /// again: SESSION_EXPIRED, and "b" is in the value once. Its next seq applies. The
    /// limits came from the log, so both replicas hold the same state, byte for byte.
    @Test func aResendAfterExpiryAppliesOnceAndReplicasWithDifferentFlagsAgree() throws {
        let replicas = try TwoReplicas(leaderArguments: ["--session-timeout-s", "2", "--request-timeout-ms", "60000"],
                                       followerArguments: [])
        defer { replicas.shutdown() }
        let leader = replicas.leader

        // The leader's kvd proposes its limits once it has applied an entry of its term.
        leader.lead()
        replicas.commit([], isNoop: true)
        try #require(leader.run(timeoutMs: 5_000) { leader.proposals.count == 1 }, "no limits proposed: \(leader.kvdLog)")
        let limitsEntry = try CommandBatch(serialized: leader.proposals[0].data)
        #expect(limitsEntry.commands.isEmpty)
        #expect(limitsEntry.setLimits?.sessionTimeoutMs == 2_000)
        replicas.commit(leader.proposals[0].data, proposalID: leader.proposals[0].proposalID)

        #expect(try replicas.run(.append, "list", "a", client: 7, seq: 1).status == .ok)
        #expect(try replicas.run(.append, "list", "b", client: 7, seq: 2).status == .ok)  // this reply is "lost"
        let expiryStarts = EventLoop.monotonicNanos()
        var writer: UInt64 = 100
        while EventLoop.monotonicNanos() - expiryStarts < 2_300_000_000 {
            #expect(try replicas.run(.put, "other-\(writer)", "x", client: writer, seq: 1).status == .ok)
            writer += 1
            leader.run(timeoutMs: 100)
        }
        let resent = try replicas.run(.append, "list", "b", client: 7, seq: 2)
        #expect(resent.status == .sessionExpired, "\(resent)")
        #expect(try replicas.run(.append, "list", "c", client: 7, seq: 3).status == .ok)
        let read = try replicas.run(.get, "list", client: 9, seq: 1)
        #expect(read.status == .ok && read.value == Array("abc".utf8), "\(String(decoding: read.value, as: UTF8.self))")
        #expect(leader.proposals.count(where: { (try? CommandBatch(serialized: $0.data))?.setLimits != nil }) == 1,
                "limits are proposed once per term")

        let (leaderState, followerState) = try replicas.snapshots()
        #expect(leaderState == followerState, "replicas with different --session-timeout-s diverged")
        let state = try StateSnapshot(serialized: followerState)
        #expect(state.limits?.sessionTimeoutMs == 2_000)
        #expect(state.pairs.first { $0.key == Array("list".utf8) }?.value == Array("abc".utf8))
        #expect(replicas.follower.kvdLog.contains("differ from this kvd's flags"), "the follower reports its ignored flags")
    }

    /// kvd refuses a snapshot that does not decode: it says so to raftd (with where it still
    /// is), stays connected instead of reconnecting into the same snapshot again, drops the
    /// entries streamed after it, and restores from the next good snapshot.
    @Test func aCorruptSnapshotIsRefusedOnceAndAGoodOneStillRestores() throws {
        let kvd = try KvdHarness(arguments: ["--request-timeout-ms", "60000"])
        defer { kvd.shutdown() }
        let good = StateSnapshot(appliedIndex: 5, clockMs: 1_000, pairs: [KeyValuePair(key: Array("k".utf8), value: Array("v".utf8))],
                                 limits: .defaults).serialized()
        var corrupt = good
        let pairTag = try #require(corrupt.firstIndex(of: 0x1a), "the pair field's tag")
        corrupt[pairTag] = 0x1f  // field 3 with wire type 7, which does not exist
        func send(_ bytes: [UInt8]) {
            let half = bytes.count / 2
            for (offset, part) in [(0, bytes[..<half]), (half, bytes[half...])] {
                kvd.send(.snapshot(SnapshotChunk(index: 5, term: 1, offset: UInt64(offset), totalSize: UInt64(bytes.count), data: Array(part))))
            }
        }

        send(corrupt)
        kvd.send(.committed([LogEntry(term: 1, index: 6, isNoop: true)]))  // streamed before raftd hears of the refusal
        try #require(kvd.run(timeoutMs: 5_000) { !kvd.rejections.isEmpty }, "\(kvd.kvdLog)")
        kvd.run(timeoutMs: 300)
        #expect(kvd.rejections.count == 1)
        #expect(kvd.rejections.first?.index == 5 && kvd.rejections.first?.lastApplied == 0)
        #expect(kvd.rejections.first?.reason.contains("does not decode") == true, "\(kvd.rejections)")
        #expect(kvd.hellos == 1, "kvd reconnected instead of refusing: \(kvd.kvdLog)")
        #expect(kvd.kvdLog.contains("refusing raftd's snapshot"))

        send(good)
        kvd.send(.committed([LogEntry(term: 1, index: 6, isNoop: true)]))
        kvd.lead()
        try kvd.request(KvRequest(requestID: 1, clientID: 3, seq: 1, op: .get, key: Array("k".utf8)))
        try #require(kvd.run(timeoutMs: 5_000) { kvd.proposals.count == 1 }, "\(kvd.kvdLog)")
        kvd.commit(kvd.proposals[0], at: 7)
        try #require(kvd.run(timeoutMs: 5_000) { kvd.replies[1] != nil }, "\(kvd.kvdLog)")
        #expect(kvd.replies[1]?.status == .ok && kvd.replies[1]?.value == Array("v".utf8))
        #expect(kvd.hellos == 1 && kvd.rejections.count == 1)
    }

    /// The Clerk's side, on a real cluster whose kvds all run with `--session-timeout-s 2`
    /// (the leader proposes it through the log): a write that meets SESSION_EXPIRED ends as
    /// "applied, reply lost" and is not run again; a Get reads again under a fresh seq.
    @Test func theClerkNeverRerunsAWriteAfterExpiryAndRereadsAGet() throws {
        var options = ClusterOptions(nodes: 3, gateways: 0)
        options.sessionTimeoutS = 2
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let endpoints = (1...3).map { Endpoint.tcp(host: "127.0.0.1", port: cluster.kvdPorts[$0]!) }
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        let client: UInt64 = 0x5e55_1011
        let first = Clerk(endpoints: endpoints, nodeIDs: [1, 2, 3], clientID: client, operationTimeoutMs: 20_000)
        defer { first.closeConnections() }
        for value in ["a", "b"] {
            guard case let .completed(reply) = first.append(Array("list".utf8), Array(value.utf8)), reply.status == .ok else {
                Issue.record("\(fail("append \(value) failed"))")
                return
            }
        }
        // Others write for more than the session timeout, so client's session expires.
        let other = Clerk(endpoints: endpoints, nodeIDs: [1, 2, 3], operationTimeoutMs: 20_000)
        defer { other.closeConnections() }
        let expiryStarts = EventLoop.monotonicNanos()
        var n = 0
        while EventLoop.monotonicNanos() - expiryStarts < 2_500_000_000 {
            _ = other.put(Array("other-\(n)".utf8), [1])
            n += 1
            usleep(100_000)
        }

        // The same client again from seq 1, as after a lost reply to seq 2 (and 1).
        let again = Clerk(endpoints: endpoints, nodeIDs: [1, 2, 3], clientID: client, operationTimeoutMs: 20_000)
        defer { again.closeConnections() }
        let resent = again.append(Array("list".utf8), Array("b".utf8))
        guard case .appliedReplyLost = resent else {
            Issue.record("\(fail("expected applied-reply-lost, got \(resent)"))")
            return
        }
        guard case let .completed(read) = again.get(Array("list".utf8)) else {
            Issue.record("\(fail("get failed"))")
            return
        }
        #expect(read.status == .ok && read.value == Array("ab".utf8), "\(String(decoding: read.value, as: UTF8.self))")
        guard case let .completed(appended) = again.append(Array("list".utf8), Array("c".utf8)), appended.status == .ok else {
            Issue.record("\(fail("append after the session reopened failed"))")
            return
        }
        guard case let .completed(final) = other.get(Array("list".utf8)) else {
            Issue.record("\(fail("final get failed"))")
            return
        }
        #expect(final.value == Array("abc".utf8), "\(String(decoding: final.value, as: UTF8.self))")
        #expect((1...3).contains { cluster.kvd($0).logContains("proposing this kvd's session limits") }, "\(fail("no limits proposed"))")
    }
}
