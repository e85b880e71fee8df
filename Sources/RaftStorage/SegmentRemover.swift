import Dispatch
import Glibc
import Logging

/// Deletes WAL segments a snapshot made obsolete, on a background thread.
///
/// Freeing a 64 MiB preallocated file is slow on ext4 (8 ms alone, 60–120 ms while the log is
/// being fsynced under load), and nothing waits for it: the segments are already dropped from
/// the log, and recovery finishes any deletion a crash interrupted. Files go oldest first, each
/// followed by a directory sync, on one serial queue, so a crash never leaves a hole in the
/// segment sequence.
///
/// Even in the background, freeing a whole segment in one journal transaction stalls the WAL's
/// fdatasyncs behind it (writes into preallocated extents commit the journal too), so a file is
/// first shrunk a few MiB at a time with pauses between, and unlinked once small.
final class SegmentRemover: Sendable {
    private let queue = DispatchQueue(label: "kvraft.wal-segment-remover")
    private let directory: String
    private let logger: Logger

    init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Queues `paths` (oldest first) for deletion.
    func remove(_ paths: [String], snapshotIndex: UInt64) {
        guard !paths.isEmpty else { return }
        let directory = self.directory
        let logger = self.logger
        queue.async {
            var deleted: [String] = []
            for path in paths {
                do {
                    try SegmentRemover.shrinkGradually(path)
                    try SystemFile.remove(path)
                    try SystemFile.syncDirectory(directory)
                    deleted.append(path)
                } catch {
                    // Recovery deletes what the snapshot covers, so a leftover file costs only disk.
                    logger.warning("could not delete a WAL segment the snapshot covers; recovery will",
                                   metadata: ["file": "\(path)", "error": "\(error)"])
                    break
                }
            }
            if !deleted.isEmpty {
                logger.info("deleted \(deleted.count) WAL segments the snapshot covers", metadata: [
                    "snapshotIndex": "\(snapshotIndex)", "files": "\(deleted.joined(separator: ", "))",
                ])
            }
        }
    }

    static let shrinkStep = 4 << 20
    static let shrinkPauseMicros: UInt32 = 2_000

    /// Truncates `path` down to nothing `shrinkStep` bytes at a time, pausing between steps.
    private static func shrinkGradually(_ path: String) throws {
        let fd = try SystemFile.open(path, flags: O_WRONLY)
        defer { SystemFile.close(fd) }
        var size = try SystemFile.size(fd, path: path)
        while size > shrinkStep {
            size -= shrinkStep
            try SystemFile.truncate(fd, to: size, path: path)
            usleep(shrinkPauseMicros)
        }
    }

    /// Returns once every queued deletion is done.
    func waitUntilIdle() {
        queue.sync {}
    }
}
