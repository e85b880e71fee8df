import Glibc
import Synchronization

/// Writes a snapshot file as its data arrives in pieces (a snapshot streamed from the state
/// machine), so the whole snapshot never has to be in memory: header and pieces as they come,
/// then on `commit` the checksum, an fsync and the atomic rename over `snapshot`.
///
/// It writes `snapshot.<name>.tmp` (`snapshot.incoming.tmp` unless told otherwise), never the
/// `snapshot.tmp` through which `saveSnapshot` and `installSnapshot` write a whole snapshot, so
/// it cannot disturb them; leftovers from a crash are removed when the log is opened. Creating one touches no file: the file is
/// opened by the first `append` (or `commit`), so a caller that runs every `append`, `commit`
/// and `abandon` of the writers of one name on one serial queue, in order, never has two of
/// them write the same file at once.
public final class SnapshotFileWriter: Sendable {
    public let index: UInt64
    public let term: UInt64
    public let dataSize: Int
    private let directory: String
    private let path: String
    private let state: Mutex<State>

    private struct State {
        var fd: Int32?
        var written = 0
        var checksum: UInt32 = 0
        var finished = false
        /// The first error an `append` hit; `commit` throws it.
        var failure: StorageError?
    }

    /// A writer for `directory`'s next snapshot file: (`index`, `term`) with `dataSize` bytes of
    /// data to come, written to `snapshot.<name>.tmp` until `commit` renames it.
    public convenience init(directory: String, index: UInt64, term: UInt64, dataSize: Int, name: String = "incoming") {
        precondition(!name.isEmpty && !name.contains("/"), "a snapshot file name part, not a path: \(name)")
        self.init(directory: directory, index: index, term: term, dataSize: dataSize, temporaryFileName: "snapshot.\(name).tmp")
    }

    /// One writing `temporaryFileName` (`SnapshotFile.write` uses `snapshot.tmp`).
    init(directory: String, index: UInt64, term: UInt64, dataSize: Int, temporaryFileName: String) {
        self.index = index
        self.term = term
        self.dataSize = dataSize
        self.directory = directory
        path = "\(directory)/\(temporaryFileName)"
        state = Mutex(State())
    }

    /// Whether `fileName` is one that a writer writes (or a crash left behind).
    static func isTemporaryFile(_ fileName: String) -> Bool {
        fileName.hasPrefix("snapshot.") && fileName.hasSuffix(".tmp") && fileName.count > "snapshot..tmp".count
    }

    /// Closes the file if still open. Never removes it: that is `abandon`'s, run in order with
    /// the other writers' operations (a newer writer may already be writing the same path).
    deinit {
        state.withLock { state in
            if let fd = state.fd { SystemFile.close(fd) }
        }
    }

    /// Bytes of data written so far.
    public var written: Int { state.withLock { $0.written } }

    /// Writes the next piece of data (opening the file and writing its header first). Throws if it
    /// would run past `dataSize`, after `commit` or `abandon`, or on I/O errors; the first error
    /// sticks and is thrown again by `commit`.
    public func append(_ bytes: [UInt8]) throws {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            do {
                try write(bytes, &state)
            } catch {
                let failure = error as? StorageError ?? StorageError.io(operation: "write", path: path, errno: EIO)
                state.failure = failure
                throw failure
            }
        }
    }

    private func write(_ bytes: [UInt8], _ state: inout State) throws {
        guard !state.finished else {
            throw StorageError.corruptSnapshot(path: path, reason: "written to after it was committed or abandoned")
        }
        guard state.written + bytes.count <= dataSize else {
            throw StorageError.corruptSnapshot(path: path, reason: "\(state.written + bytes.count) bytes of data for a snapshot of \(dataSize)")
        }
        let fd = try openIfNeeded(&state)
        try bytes.withUnsafeBytes { raw in
            try SystemFile.writeAll(fd, raw, path: path)
            state.checksum = CRC32C.checksum(raw, continuing: state.checksum)
        }
        state.written += bytes.count
    }

    private func openIfNeeded(_ state: inout State) throws -> Int32 {
        if let fd = state.fd { return fd }
        let header = SnapshotFile.header(index: index, term: term, dataLength: dataSize)
        let fd = try SystemFile.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        state.fd = fd
        try header.withUnsafeBytes { try SystemFile.writeAll(fd, $0, path: path) }
        state.checksum = CRC32C.checksum(header)
        return fd
    }

    /// With every byte written: appends the checksum, fsyncs, and renames the file over the data
    /// dir's snapshot (then fsyncs the directory). Throws, leaving the old snapshot in place, if an
    /// `append` failed, data is missing, or on I/O errors.
    public func commit() throws {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard !state.finished else {
                throw StorageError.corruptSnapshot(path: path, reason: "committed after it was committed or abandoned")
            }
            guard state.written == dataSize else {
                throw StorageError.corruptSnapshot(path: path, reason: "only \(state.written) of \(dataSize) bytes of data were written")
            }
            let fd = try openIfNeeded(&state)
            var trailer: [UInt8] = []
            trailer.appendLittleEndian(state.checksum)
            try trailer.withUnsafeBytes { try SystemFile.writeAll(fd, $0, path: path) }
            try SystemFile.fullSync(fd, path: path)
            SystemFile.close(fd)
            state.fd = nil
            state.finished = true
            try SystemFile.rename(path, SnapshotFile.path(in: directory))
            try SystemFile.syncDirectory(directory)
        }
    }

    /// Gives up: closes and removes the unfinished file (nothing once committed).
    public func abandon() {
        state.withLock { state in
            guard !state.finished else { return }
            state.finished = true
            if let fd = state.fd {
                SystemFile.close(fd)
                state.fd = nil
                try? SystemFile.remove(path)
            }
        }
    }
}
