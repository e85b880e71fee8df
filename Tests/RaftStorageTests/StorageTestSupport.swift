import Foundation
import Logging
import Raft
import Synchronization
import Testing
@testable import RaftStorage

/// A fresh directory under /tmp, removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/raft-storage-test-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: errno \(errno)")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// The data dir the tests open (a subdirectory, so `open` exercises creating it).
    var dataDir: String { path + "/data" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Collects what the log reports, so tests can check warnings are emitted.
final class LogCapture: Sendable {
    private let events = Mutex<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>([])

    var logger: Logger {
        Logger(label: "raft-storage-test") { _ in CapturingHandler(capture: self) }
    }

    func record(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        events.withLock { $0.append((level, message, metadata)) }
    }

    func messages(at level: Logger.Level) -> [(message: String, metadata: Logger.Metadata)] {
        events.withLock { $0.filter { $0.level == level }.map { ($0.message, $0.metadata) } }
    }
}

struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.record(event.level, event.message.description, metadata.merging(event.metadata ?? [:]) { $1 })
    }
}

let testCluster: UInt64 = 0x7f3a_0000_0000_00a1
let testNode: UInt64 = 2

/// Opens the test log. Most tests inspect segment files byte by byte, so segments are not
/// preallocated unless asked (PreallocationTests cover that mode).
func openLog(_ dir: TemporaryDirectory, segmentSize: Int = DurableLog.defaultSegmentSize, preallocate: Bool = false,
             keepsSnapshotData: Bool = true, capture: LogCapture = LogCapture()) throws -> DurableLog {
    try DurableLog.open(directory: dir.dataDir, clusterID: testCluster, nodeID: testNode, segmentSize: segmentSize,
                        preallocateSegments: preallocate, keepsSnapshotData: keepsSnapshotData, logger: capture.logger)
}

/// A temporary dir whose data dir exists already (for tests of files inside it, without a log).
func makeDataDir() throws -> TemporaryDirectory {
    let dir = TemporaryDirectory()
    try FileManager.default.createDirectory(atPath: dir.dataDir, withIntermediateDirectories: true)
    return dir
}

/// Entries `indexes` of `term`, each carrying data that names its index and term.
func makeEntries(_ indexes: ClosedRange<UInt64>, term: UInt64, kind: Entry.Kind = .normal) -> [Entry] {
    indexes.map { Entry(term: term, index: $0, kind: kind, data: Array("entry \($0) term \(term)".utf8)) }
}

func segmentPaths(_ dir: TemporaryDirectory) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir.dataDir)
        .filter { $0.hasPrefix("wal-") }
        .sorted()
        .map { dir.dataDir + "/" + $0 }
}

func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
}

func truncateFile(_ path: String, to length: Int) {
    precondition(truncate(path, off_t(length)) == 0, "truncate \(path) failed: errno \(errno)")
}

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func segmentNames(_ dir: TemporaryDirectory) throws -> [String] {
    try segmentPaths(dir).map { String($0.split(separator: "/").last!) }
}

/// Replays one segment file on its own, as if the ones before it were deleted: what it holds.
func replaySegment(_ dir: TemporaryDirectory, _ name: String) throws -> LogReplay {
    let sequence = try #require(WALSegment.sequence(fromFileName: name))
    let segment = WALSegment(directory: dir.dataDir, sequence: sequence)
    var replay = LogReplay(firstSequence: sequence)
    replay.begin(segment)
    _ = try segment.replay(isLast: true) { kind, payload in replay.apply(kind, payload) }
    return replay
}

/// Appends `entries` one synced append at a time, so they spread over many small segments.
func appendEach(_ log: DurableLog, _ entries: [Entry]) throws {
    for entry in entries {
        try log.append([entry])
        try log.sync()
    }
}
