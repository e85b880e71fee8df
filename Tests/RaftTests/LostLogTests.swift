import Raft
import Testing

/// A follower that lost its log (its data dir wiped, or replaced by an empty one) while the
/// leader still remembers a match for it: no message may stop a process, so the follower answers
/// the leader's heartbeat or append with where its log really ends, and the leader starts over
/// from there — with its snapshot when it compacted those entries away (etcd's "tocommit out of
/// range" panic, answered instead).
@Suite struct LostLogTests {
    /// A reliable, in-order pump whose nodes can be replaced by empty ones (a wiped disk).
    final class Pump {
        let peers: [UInt64]
        var nodes: [UInt64: RaftNode] = [:]
        private(set) var delivered: [Message] = []

        init(count: Int) {
            peers = (1...UInt64(count)).map { $0 }
            for id in peers { nodes[id] = empty(id) }
        }

        func empty(_ id: UInt64) -> RaftNode {
            RaftNode(config: RaftConfig(id: id, peers: peers, electionTicks: 10, randomSeed: id))
        }

        func run(maxRounds: Int = 1000) {
            for _ in 0..<maxRounds {
                var outgoing: [Message] = []
                for id in peers where nodes[id]!.hasReady {
                    let ready = nodes[id]!.ready()
                    outgoing += ready.messages + ready.messagesAfterPersist
                    nodes[id]!.advance(ready)
                }
                if outgoing.isEmpty { return }
                for message in outgoing {
                    delivered.append(message)
                    nodes[message.to]?.step(message)
                }
            }
        }

        func tick(_ ids: [UInt64]) {
            for id in ids { nodes[id]!.tick() }
            run()
        }

        func elect(_ id: UInt64) {
            for _ in 0..<100 where nodes[id]!.status.role != .leader { tick([id]) }
        }

        var transcript: String { delivered.suffix(40).map(\.description).joined(separator: "\n") }
    }

    /// Leader 1 of three, with `count` commands committed and known committed everywhere.
    static func clusterWithCommittedCommands(_ count: Int) -> Pump {
        let pump = Pump(count: 3)
        pump.elect(1)
        for value in 1...count { _ = pump.nodes[1]!.propose([UInt8(value)]) }
        pump.run()
        pump.tick([1])  // followers learn the commit index from the heartbeat
        return pump
    }

    @Test func heartbeatWithCommitBeyondTheLogIsAnsweredNotFatal() {
        let node = RaftNode(config: RaftConfig(id: 1, peers: [1, 2, 3]))
        node.step(Message(type: .heartbeat, from: 2, to: 1, term: 5, commit: 100))
        let ready = node.ready()
        node.advance(ready)
        let answer = (ready.messages + ready.messagesAfterPersist).first { $0.type == .heartbeatResponse }
        #expect(answer?.reject == true && answer?.index == 0, "expected a rejection naming our last index 0, got \(String(describing: answer))")
        #expect(node.status.commitIndex == 0, "committed entries it does not hold")
        #expect(node.status.leader == 2 && node.status.term == 5)
    }

    @Test func wipedFollowerGetsTheSnapshotAfterTheFirstHeartbeat() {
        let pump = Self.clusterWithCommittedCommands(5)
        let leader = pump.nodes[1]!
        let committed = leader.status.commitIndex
        #expect(pump.nodes[3]!.status.commitIndex == committed)
        #expect(leader.compact(through: leader.status.appliedIndex, data: [42], retaining: 0) != nil)

        pump.nodes[3] = pump.empty(3)  // wiped, restarted with the same id
        pump.tick([1])
        #expect(pump.delivered.contains { $0.from == 3 && $0.type == .heartbeatResponse && $0.reject },
                "\(pump.transcript)")
        #expect(pump.delivered.contains { $0.to == 3 && $0.type == .snapshot }, "no snapshot sent\n\(pump.transcript)")
        let wiped = pump.nodes[3]!
        #expect(wiped.status.snapshotIndex == committed && wiped.status.commitIndex >= committed, "\(pump.transcript)")

        // Replication continues normally from there.
        guard case .accepted(let index, _) = leader.propose([99]) else { Issue.record("leader refused"); return }
        pump.run()
        pump.tick([1])
        #expect(wiped.entry(at: index)?.data == [99] && wiped.status.commitIndex >= index, "\(pump.transcript)")
    }

    @Test func wipedFollowerRejectingAnAppendIsReplicatedFromTheStart() {
        let pump = Self.clusterWithCommittedCommands(5)
        let leader = pump.nodes[1]!
        pump.nodes[3] = pump.empty(3)
        // The first thing it hears is an append continuing where its old log ended.
        guard case .accepted(let index, _) = leader.propose([77]) else { Issue.record("leader refused"); return }
        pump.run()
        pump.tick([1])
        let wiped = pump.nodes[3]!
        #expect(wiped.status.lastIndex == leader.status.lastIndex, "\(pump.transcript)")
        #expect((1...index).allSatisfy { wiped.entry(at: $0) == leader.entry(at: $0) }, "logs differ\n\(pump.transcript)")
        #expect(wiped.status.commitIndex == index)
    }

    @Test func acknowledgementBeyondTheLeadersLogIsIgnored() {
        let pump = Self.clusterWithCommittedCommands(3)
        let leader = pump.nodes[1]!
        let commit = leader.status.commitIndex
        leader.step(Message(type: .appendResponse, from: 2, to: 1, term: leader.status.term, index: 10_000))
        leader.step(Message(type: .appendResponse, from: 3, to: 1, term: leader.status.term, index: 10_000))
        leader.step(Message(type: .appendResponse, from: 2, to: 1, term: leader.status.term, index: 10_000,
                            reject: true, rejectHint: 0))
        pump.run()
        #expect(leader.status.commitIndex == commit)
        guard case .accepted(let index, _) = leader.propose([5]) else { Issue.record("leader refused"); return }
        pump.run()
        #expect(leader.status.commitIndex == index, "replication broke\n\(pump.transcript)")
    }
}
