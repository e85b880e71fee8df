import ClusterTestSupport
import Foundation
import Testing
import Wire

/// kvd's read path against a stand-in raftd (`KvdHarness`): a Get is not proposed; kvd asks
/// for a read index, answers only once it has applied that index, and redirects when raftd
/// says it does not lead.
@Suite(.serialized) struct ReadIndexKvdTests {
    @Test func aGetWaitsForItsReadIndexToApplyAndIsNeverLogged() throws {
        let kvd = try KvdHarness(arguments: [])
        defer { kvd.shutdown() }
        kvd.answersReadsWithLog = false
        kvd.lead()
        try kvd.put(1)
        try #require(kvd.run(timeoutMs: 5_000) { kvd.proposals.count == 1 }, "\(kvd.kvdLog)")
        let put = kvd.proposals[0]
        // Two Gets in one pass share one read id.
        try kvd.request(KvRequest(requestID: 2, clientID: 9, seq: 1, op: .get, key: Array("key-1".utf8)))
        try kvd.request(KvRequest(requestID: 3, clientID: 0, op: .get, key: Array("key-1".utf8)))
        try #require(kvd.run(timeoutMs: 5_000) { !kvd.readRequests.isEmpty }, "\(kvd.kvdLog)")
        kvd.run(timeoutMs: 100)
        #expect(kvd.proposals.count == 1, "a Get was proposed")
        // The read index is the Put's entry, not yet applied: no answer.
        for id in kvd.readRequests { kvd.send(.readResults([ReadResult(readID: id, outcome: .ready(index: 1, term: 1))])) }
        kvd.run(timeoutMs: 200)
        #expect(kvd.replies[2] == nil && kvd.replies[3] == nil, "answered before the read index applied")
        kvd.commit(put)
        try #require(kvd.run(timeoutMs: 5_000) { kvd.replies[2] != nil && kvd.replies[3] != nil }, "\(kvd.kvdLog)")
        for id: UInt64 in [2, 3] {
            #expect(kvd.replies[id]?.status == .ok && kvd.replies[id]?.value == Array("value 1".utf8) && kvd.replies[id]?.leaderTerm == 1)
        }
    }

    @Test func notLeaderRedirectsAndUseLogProposes() throws {
        let kvd = try KvdHarness(arguments: [])
        defer { kvd.shutdown() }
        kvd.answersReadsWithLog = false
        kvd.lead()
        try kvd.request(KvRequest(requestID: 1, op: .get, key: Array("k".utf8)))
        try #require(kvd.run(timeoutMs: 5_000) { kvd.readRequests.count == 1 }, "\(kvd.kvdLog)")
        kvd.send(.readResults([ReadResult(readID: kvd.readRequests[0], outcome: .notLeader(leaderID: 3))]))
        try #require(kvd.run(timeoutMs: 5_000) { kvd.replies[1] != nil })
        #expect(kvd.replies[1]?.status == .wrongLeader && kvd.replies[1]?.leaderHint == "3")
        // raftd in --read-mode log: the Get is proposed instead.
        kvd.lead()
        kvd.run(timeoutMs: 50)
        try kvd.request(KvRequest(requestID: 2, op: .get, key: Array("k".utf8)))
        try #require(kvd.run(timeoutMs: 5_000) { kvd.readRequests.count == 2 }, "\(kvd.kvdLog)")
        kvd.send(.readResults([ReadResult(readID: kvd.readRequests[1], outcome: .useLog)]))
        try #require(kvd.run(timeoutMs: 5_000) { kvd.proposals.count == 1 }, "\(kvd.kvdLog)")
        #expect(try kvd.commandCount(kvd.proposals[0]) == 1)
    }
}
