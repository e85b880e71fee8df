import ClusterTestSupport
import EventLoop
import Foundation
import Testing
import Wire

/// raftd's side of a snapshot kvd refuses: it logs it and backs off (1 s, 2 s, … up to 30 s)
/// before resending, instead of resending it in a loop.
@Suite(.serialized)
struct KvdSnapshotRefusalTests {
    @Test func raftdBacksOffBeforeResendingARefusedSnapshot() throws {
        var options = ClusterOptions(nodes: 3, gateways: 0)
        options.snapshotLogBytes = 32 << 10
        options.snapshotCatchUpBytes = 4 << 10
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        let probe = ApplyProbe(cluster: cluster)
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "\(fail("no leader elected"))")
        let leader = try #require(probe.leader)
        let link = try #require(probe.links[leader])

        // ~100 KiB of log: raftd asks its kvd for a snapshot and compacts up to it.
        let snapshotFile = cluster.directory.appendingPathComponent("data-\(leader)/snapshot").path
        for batch in 0..<10 {
            probe.propose(on: leader, (0..<100).map { i in Array("command-\(batch)-\(i)-".utf8) + [UInt8](repeating: 0x61, count: 100) })
            probe.run(timeoutMs: 5) { false }
        }
        #expect(probe.run(timeoutMs: 20_000) { FileManager.default.fileExists(atPath: snapshotFile) && link.snapshotRequests >= 1 },
                "\(fail("no snapshot taken"))")
        probe.run(timeoutMs: 300) { false }  // let the compaction finish

        // Its kvd comes back with nothing applied and refuses every snapshot.
        link.refusesSnapshots = true
        link.forgetApplied()
        probe.disconnect(leader)
        let started = EventLoop.monotonicNanos()
        probe.run(timeoutMs: 3_700) { false }
        let starts = link.snapshotStarts.map { Double($0 - started) / 1e6 }
        #expect((2...3).contains(starts.count), "snapshot sent at \(starts) ms: \(fail("not backing off"))")
        if starts.count >= 2 { #expect(starts[1] - starts[0] >= 900, "resent after \(starts[1] - starts[0]) ms, not after 1 s") }
        if starts.count >= 3 { #expect(starts[2] - starts[1] >= 1_800, "resent after \(starts[2] - starts[1]) ms, not after 2 s") }
        #expect(cluster.raftd(leader).logContains("kvd refused the snapshot"), "\(fail("refusal not logged"))")
        #expect(link.isConnected, "raftd dropped the kvd that refused its snapshot")
    }
}
