import Raft
import RaftServer
import SeededRandom
import SimulationSupport
import Wire

/// A few simulated raftds on a perfect, instant network, moved by hand: for driver tests
/// that script one situation (the seeded chaos is `RaftdSimulation`).
final class DriverTestCluster {
    let nodes: [SimulatedRaftd]
    var now: UInt64 = 1_000_000_000
    /// Links that drop everything (both ways).
    var cut: Set<[UInt64]> = []
    /// Drops exactly the messages it returns true for.
    var dropFilter: ((Message) -> Bool)?
    private var random = SeededGenerator(seed: 7)

    init(count: Int, configure: (inout RaftDriverConfig) -> Void = { _ in }) {
        let ids = (1...UInt64(count)).map { $0 }
        nodes = ids.map { id in
            var config = RaftDriverConfig(nodeID: id, tick: .milliseconds(10))
            configure(&config)
            return SimulatedRaftd(id: id, peers: ids, config: config)
        }
        for node in nodes {
            node.start(now: now, seed: UInt64(node.id) * 7919)
            node.connectKvd(now: now)
        }
    }

    func node(_ id: UInt64) -> SimulatedRaftd { nodes[Int(id - 1)] }
    func driver(_ id: UInt64) -> RaftDriver { node(id).driver! }

    func isolate(_ id: UInt64) {
        for other in nodes where other.id != id {
            cut.insert([id, other.id])
            cut.insert([other.id, id])
        }
    }

    /// Runs Ready passes and delivers every message at once, until nothing moves.
    func settle() {
        for _ in 0..<100 {
            var moved = false
            for node in nodes { node.driver?.processReady(now: now) }
            for node in nodes {
                let messages = node.outbox
                node.outbox.removeAll()
                for message in messages where !cut.contains([message.from, message.to]) && dropFilter?(message) != true {
                    let target = self.node(message.to)
                    guard let driver = target.driver else { continue }
                    if message.type == .snapshot, let snapshot = message.snapshot {
                        guard let data = node.disk.snapshotData(index: snapshot.index, term: snapshot.term) else { continue }
                        target.disk.receiveLeaderSnapshot(snapshot, data: data)
                    }
                    driver.receive(message, now: now)
                    moved = true
                }
            }
            if !moved { return }
        }
    }

    /// Moves time on by `ms`, one millisecond at a time, waking drivers and settling.
    func advance(ms: Int, kvdReads: Int = 100) {
        for _ in 0..<ms {
            now += 1_000_000
            for node in nodes {
                guard let driver = node.driver else { continue }
                if driver.nextDeadline <= now { driver.wake(now: now) }
                for commit in node.disk.completeCommits() { driver.snapshotCommitted(commit) }
            }
            settle()
            for node in nodes { node.kvdReads(kvdReads, now: now) }
            settle()
        }
    }

    /// Runs until some node leads; returns it.
    func electLeader() -> SimulatedRaftd {
        for _ in 0..<3_000 {
            if let leader = nodes.first(where: { $0.driver?.status.role == .leader }) { return leader }
            advance(ms: 1)
        }
        preconditionFailure("no leader within 3 s")
    }

    /// kvd at `id` proposes `count` commands.
    func propose(at id: UInt64, count: Int) {
        for _ in 0..<count { driver(id).kvdReceived(node(id).kvd.makeProposal(), now: now) }
    }
}
