import Raft
import Testing

@testable import RaftStorage

/// Segments preallocated to their full size (the default outside these tests): appends land
/// inside the reserved zeros, recovery finds the end of the records, rollover and torn tails
/// behave as without preallocation.
struct PreallocationTests {
    @Test func segmentsAreReservedUpFrontAndReopenCleanly() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir, segmentSize: 64 * 1024, preallocate: true)
        let path = try segmentPaths(dir)[0]
        #expect(try fileSize(path) == 64 * 1024)
        try log.append(makeEntries(1...50, term: 1))
        try log.sync()
        #expect(try fileSize(path) == 64 * 1024)
        log.close()

        let capture = LogCapture()
        let reopened = try openLog(dir, segmentSize: 64 * 1024, preallocate: true, capture: capture)
        #expect(reopened.entries == makeEntries(1...50, term: 1))
        #expect(reopened.recovery.truncatedBytes == 0)
        #expect(capture.messages(at: .warning).isEmpty)
        reopened.close()
    }

    @Test func rolloverAcrossPreallocatedSegments() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir, segmentSize: 4096, preallocate: true)
        for index in UInt64(1)...300 {
            try log.append(makeEntries(index...index, term: 1))
            try log.sync()
        }
        log.close()
        #expect(try segmentPaths(dir).count > 3)
        let reopened = try openLog(dir, segmentSize: 4096, preallocate: true)
        #expect(reopened.entries == makeEntries(1...300, term: 1))
        reopened.close()
    }

    @Test func tornRecordInsidePreallocatedSpaceIsTruncatedAndSpaceRestored() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir, segmentSize: 64 * 1024, preallocate: true)
        try log.append(makeEntries(1...3, term: 1))
        try log.sync()
        log.close()
        let path = try segmentPaths(dir)[0]
        var bytes = try readFile(path)
        let end = bytes.lastIndex { $0 != 0 }! + 1
        // Half a record's worth of garbage right after the last record, zeros after it.
        for offset in end..<(end + 10) { bytes[offset] = 0x5a }
        try writeFile(path, bytes)

        let reopened = try openLog(dir, segmentSize: 64 * 1024, preallocate: true)
        #expect(reopened.entries == makeEntries(1...3, term: 1))
        #expect(reopened.recovery.truncatedBytes > 0)
        #expect(try fileSize(path) == 64 * 1024)
        try reopened.append(makeEntries(4...5, term: 1))
        try reopened.sync()
        reopened.close()
        let again = try openLog(dir, segmentSize: 64 * 1024, preallocate: true)
        #expect(again.entries == makeEntries(1...5, term: 1))
        #expect(again.recovery.truncatedBytes == 0)
        again.close()
    }

    @Test func zerosAreWrittenAheadOfTheDataAndNeverPastTheReservation() throws {
        let dir = try makeDataDir()
        let chunk = WALSegmentWriter.zeroFillChunk
        let reserved = 2 * chunk + chunk / 4
        let segment = WALSegment(directory: dir.dataDir, sequence: 1)
        let writer = try WALSegmentWriter.create(segment, directory: dir.dataDir, preallocate: reserved)
        try writer.write([UInt8](repeating: 0xa5, count: 100))
        #expect(writer.zeroedThrough == 100 + chunk)
        // Still more than half a chunk of zeros ahead: nothing more is written.
        try writer.write([UInt8](repeating: 0xa5, count: chunk / 4))
        #expect(writer.zeroedThrough == 100 + chunk)
        try writer.write([UInt8](repeating: 0xa5, count: chunk / 2))
        #expect(writer.zeroedThrough == 100 + 2 * chunk)
        // The next step would pass the reservation: zeros stop at its end.
        try writer.write([UInt8](repeating: 0xa5, count: chunk))
        #expect(writer.zeroedThrough == reserved)
        try writer.sync()
        #expect(try fileSize(segment.path) == reserved)
        let bytes = try readFile(segment.path)
        #expect(bytes[..<writer.size].allSatisfy { $0 == 0xa5 })
        #expect(bytes[writer.size...].allSatisfy { $0 == 0 })
    }

    @Test func withoutPreallocationNoZerosAreWritten() throws {
        let dir = try makeDataDir()
        let segment = WALSegment(directory: dir.dataDir, sequence: 1)
        let writer = try WALSegmentWriter.create(segment, directory: dir.dataDir, preallocate: 0)
        try writer.write([UInt8](repeating: 0xa5, count: 1000))
        try writer.sync()
        #expect(writer.zeroedThrough == writer.size)
        #expect(try fileSize(segment.path) == 1000)
    }
}
