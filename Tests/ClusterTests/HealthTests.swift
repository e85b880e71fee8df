import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing

/// /health follows whether a process is part of a serving cluster: a node cut off from the
/// majority turns 503 (raftd: no leader; kvd: its raftd knows none), with a JSON reason, and
/// 200 again once it is back.
@Suite(.serialized)
struct HealthTests {
    @Test func nodeCutOffFromTheMajorityTurnsUnhealthyAndBack() throws {
        let ports = try OperatorPorts(nodes: 3, gateways: 1)
        var options = ClusterOptions()
        options.extraArguments = { kind, number in ["--metrics-listen", "127.0.0.1:\(ports.port(kind, number))"] }
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader(), "no leader\n\(cluster.logs())")
        let everyone: [(ClusterProcess.Kind, Int)] = (1...3).flatMap { [(.raftd, $0), (.kvd, $0)] } + [(.gateway, 1)]
        for (kind, number) in everyone {
            #expect(eventually { ports.health(kind, number).status == 200 }, "\(kind) \(number): \(ports.health(kind, number).detail)")
        }

        let follower = leader == 1 ? 2 : 1
        cluster.partition([[follower], (1...3).filter { $0 != follower }])
        #expect(eventually { ports.health(.raftd, follower).status == 503 }, "raftd \(follower) stayed healthy alone")
        #expect(eventually { ports.health(.kvd, follower).status == 503 }, "kvd \(follower) stayed healthy")
        let reason = ports.health(.raftd, follower).detail
        #expect(reason.hasPrefix(#"{"health":"false","reason":""#) && reason.contains("no leader"), "\(reason)")
        // The majority side still serves.
        for node in (1...3) where node != follower { #expect(ports.health(.raftd, node).status == 200) }

        cluster.heal()
        #expect(eventually(seconds: 10) { ports.health(.raftd, follower).status == 200 }, "raftd \(follower) did not recover")
        #expect(eventually(seconds: 10) { ports.health(.kvd, follower).status == 200 }, "kvd \(follower) did not recover")
        #expect(ports.health(.raftd, follower).detail == #"{"health":"true"}"#)
    }
}
