import Foundation
import Raft
import Testing
@testable import RaftStorage

/// Measurements, printed rather than asserted: the machine is shared and noisy.
/// `RAFT_STORAGE_BIG=1` recovers 1 M entries instead of 200 k.
@Suite(.serialized) struct PerformanceTests {
    private static let payload = [UInt8](repeating: 0x61, count: 100)

    @Test func recoveryTime() throws {
        let count = ProcessInfo.processInfo.environment["RAFT_STORAGE_BIG"] == "1" ? 1_000_000 : 200_000
        let dir = TemporaryDirectory()
        let clock = ContinuousClock()
        let writeStarted = clock.now
        do {
            let log = try openLog(dir)
            var batch: [Entry] = []
            batch.reserveCapacity(1000)
            for index in 1...count {
                batch.append(Entry(term: 1, index: UInt64(index), data: Self.payload))
                if batch.count == 1000 {
                    try log.append(batch)
                    try log.save(hardState: HardState(term: 1, vote: 1, commit: UInt64(index)))
                    try log.sync()
                    batch.removeAll(keepingCapacity: true)
                }
            }
            try log.append(batch)
            try log.sync()
            log.close()
        }
        let writeTime = clock.now - writeStarted

        let readStarted = clock.now
        let log = try openLog(dir)
        let readTime = clock.now - readStarted
        #expect(log.lastIndex == UInt64(count))
        #expect(log.entries.last?.data == Self.payload)
        print("""
            RaftStorage recovery: \(count) entries of \(Self.payload.count) B, \(log.recovery.segments) segments, \
            \(log.recovery.bytesRead / 1_048_576) MiB: recovered in \(readTime) \
            (written in \(writeTime) as batches of 1000)
            """)
    }

    @Test func appendAndSyncThroughput() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        let clock = ContinuousClock()
        var next: UInt64 = 1
        for batchSize in [1, 16, 256] {
            let syncs = batchSize == 1 ? 2000 : 400
            let started = clock.now
            for _ in 0..<syncs {
                let batch = (0..<UInt64(batchSize)).map { Entry(term: 1, index: next + $0, data: Self.payload) }
                next += UInt64(batchSize)
                try log.append(batch)
                try log.sync()
            }
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("""
                RaftStorage append+sync: batches of \(batchSize) × \(Self.payload.count) B: \
                \(Int(Double(syncs) / seconds)) syncs/s, \(Int(Double(syncs * batchSize) / seconds)) entries/s, \
                \(Int(seconds / Double(syncs) * 1e6)) µs per sync
                """)
        }
        log.close()
        // Every synced batch is there after a reopen.
        let reopened = try openLog(dir)
        #expect(reopened.lastIndex == next - 1)
        #expect(reopened.entries.last?.data == Self.payload)
        reopened.close()
    }
}
