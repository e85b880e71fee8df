import Testing
import Wire

/// kvd's group commit, against a stand-in raftd that commits only when told: requests that
/// arrive while a proposal is being committed wait for it, then go together as one entry.
@Suite(.serialized) struct GroupCommitTests {
    /// A kvd told it leads, to which request 1 was sent: a lone request is proposed at once, alone.
    private func leadingKvdWithOneProposalInFlight(maxWaitMs: Int) throws -> KvdHarness {
        let kvd = try KvdHarness(arguments: ["--group-commit-max-wait-ms", "\(maxWaitMs)", "--request-timeout-ms", "60000"])
        do {
            kvd.lead()
            try kvd.put(1)
            try #require(kvd.run(timeoutMs: 5_000) { kvd.proposals.count == 1 })
            #expect(try kvd.commandCount(kvd.proposals[0]) == 1)
            return kvd
        } catch {
            kvd.shutdown()
            throw error
        }
    }

    @Test func requestsGatherBehindTheProposalInFlightAndGoWhenItApplies() throws {
        let kvd = try leadingKvdWithOneProposalInFlight(maxWaitMs: 10_000)
        defer { kvd.shutdown() }

        for id in UInt64(2)...11 { try kvd.put(id) }
        kvd.run(timeoutMs: 300)
        #expect(kvd.proposals.count == 1, "nothing is proposed while the first proposal is being committed")
        #expect(kvd.replies.isEmpty)

        kvd.commit(kvd.proposals[0])
        try #require(kvd.run(timeoutMs: 5_000) { kvd.replies[1] != nil && kvd.proposals.count == 2 })
        #expect(kvd.replies[1]?.status == .ok)
        #expect(try kvd.commandCount(kvd.proposals[1]) == 10, "the ten held requests go as one entry")

        kvd.commit(kvd.proposals[1])
        #expect(kvd.run(timeoutMs: 5_000) { kvd.replies.count == 11 })
        #expect(kvd.replies.values.allSatisfy { $0.status == .ok })
        #expect(kvd.proposals.count == 2)
    }

    @Test func aHeldBatchGoesAfterTheLongestWaitEvenIfNothingCommits() throws {
        let kvd = try leadingKvdWithOneProposalInFlight(maxWaitMs: 100)
        defer { kvd.shutdown() }
        for id in UInt64(2)...4 { try kvd.put(id) }
        try #require(kvd.run(timeoutMs: 5_000) { kvd.proposals.count == 2 })
        #expect(try kvd.commandCount(kvd.proposals[1]) == 3)
        #expect(kvd.replies.isEmpty, "nothing was committed")
    }

    @Test func withoutALimitEveryRequestIsProposedAtOnce() throws {
        let kvd = try KvdHarness(arguments: ["--max-proposals-in-flight", "0", "--request-timeout-ms", "60000"])
        defer { kvd.shutdown() }
        kvd.lead()
        for id in UInt64(1)...3 {
            try kvd.put(id)
            #expect(kvd.run(timeoutMs: 5_000) { kvd.proposals.count == Int(id) })
        }
        #expect(kvd.replies.isEmpty)
    }
}
