import Raft
import Wire

/// A stand-in for kvd: applies what raftd streams (its state is one fingerprint per applied
/// index, so two kvds' histories compare exactly), answers snapshot requests with that state,
/// restores raftd's snapshots, and proposes commands while its raftd leads. Whatever breaks
/// the apply protocol is recorded in `violations`.
public final class SimulatedKvd {
    public let nodeID: UInt64
    /// Fingerprint of the entry applied at each index (position = index - 1).
    public private(set) var applied: [UInt64] = []
    public var lastApplied: UInt64 { UInt64(applied.count) }
    public private(set) var isLeader = false
    public private(set) var violations: [String] = []
    /// Entries applied by this kvd since `drainApplied`: (index, fingerprint).
    public private(set) var newlyApplied: [(index: UInt64, fingerprint: UInt64)] = []
    /// Proposals raftd accepted, by proposal id: where they landed.
    public private(set) var accepted: [UInt64: (index: UInt64, term: UInt64)] = [:]
    public private(set) var snapshotsRestored = 0
    public private(set) var snapshotsSent = 0
    private var incoming: (index: UInt64, total: Int, data: [UInt8])?
    /// A snapshot request waiting until we applied this far.
    private var snapshotWanted: UInt64?
    private var nextProposal: UInt64 = 1
    public var snapshotChunkSize = 512

    public init(nodeID: UInt64) {
        self.nodeID = nodeID
    }

    /// kvd restarted: its state is gone.
    public func crash() {
        applied.removeAll()
        incoming = nil
        snapshotWanted = nil
        isLeader = false
    }

    /// The link to raftd dropped.
    public func disconnected() {
        incoming = nil
        snapshotWanted = nil
        isLeader = false
    }

    public func drainApplied() -> [(index: UInt64, fingerprint: UInt64)] {
        defer { newlyApplied.removeAll() }
        return newlyApplied
    }

    /// Handles one message from raftd; returns the answers for it.
    public func receive(_ message: RaftToKvd) -> [KvdToRaft] {
        switch message {
        case let .committed(entries):
            for entry in entries {
                guard entry.index == lastApplied + 1 else {
                    violations.append("kvd \(nodeID) got entry \(entry.index) after applying \(lastApplied)")
                    continue
                }
                let print = Fingerprint.of(entry)
                applied.append(print)
                newlyApplied.append((entry.index, print))
            }
            return answerSnapshotRequest()
        case let .results(results):
            for result in results where result.accepted { accepted[result.proposalID] = (result.index, result.term) }
            return []
        case let .leadership(leadership):
            isLeader = leadership.isLeader
            return []
        case let .snapshot(chunk):
            if chunk.offset == 0 { incoming = (chunk.index, Int(chunk.totalSize), []) }
            guard var file = incoming, file.index == chunk.index, UInt64(file.data.count) == chunk.offset else {
                violations.append("kvd \(nodeID) got snapshot chunk (\(chunk.index) @\(chunk.offset)) out of order")
                incoming = nil
                return []
            }
            file.data += chunk.data
            guard file.data.count >= file.total else {
                incoming = file
                return []
            }
            incoming = nil
            let restored = Fingerprint.decode(file.data)
            guard UInt64(restored.count) == file.index else {
                return [.snapshotRejected(index: file.index, reason: "holds \(restored.count) entries", lastApplied: lastApplied)]
            }
            applied = restored
            snapshotsRestored += 1
            return answerSnapshotRequest()
        case let .snapshotRequest(appliedAtLeast):
            snapshotWanted = appliedAtLeast
            return answerSnapshotRequest()
        case .status, .memberAnswer, .readResults:
            return []
        }
    }

    private func answerSnapshotRequest() -> [KvdToRaft] {
        guard let wanted = snapshotWanted, lastApplied >= wanted else { return [] }
        snapshotWanted = nil
        snapshotsSent += 1
        let data = Fingerprint.encode(applied)
        var chunks: [KvdToRaft] = []
        var offset = 0
        repeat {
            let end = min(data.count, offset + snapshotChunkSize)
            chunks.append(.snapshot(SnapshotChunk(index: lastApplied, term: 0, offset: UInt64(offset), totalSize: UInt64(data.count),
                                                  data: Array(data[offset..<end]))))
            offset = end
        } while offset < data.count
        return chunks
    }

    /// A proposal of a fresh command (unique across the simulation).
    public func makeProposal() -> KvdToRaft {
        let id = nextProposal
        nextProposal += 1
        var data: [UInt8] = []
        for value in [nodeID, id] { for shift in stride(from: 0, to: 64, by: 8) { data.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        return .propose([Proposal(proposalID: id, data: data)])
    }
}

/// One number per log entry that tells different entries apart (term, kind and data).
public enum Fingerprint {
    public static func of(_ entry: LogEntry) -> UInt64 {
        hash(term: entry.term, noop: entry.isNoop || entry.isConfig, data: entry.isNoop || entry.isConfig ? [] : entry.data)
    }

    public static func of(_ entry: Entry) -> UInt64 {
        hash(term: entry.term, noop: entry.kind != .normal, data: entry.kind != .normal ? [] : entry.data)
    }

    private static func hash(term: UInt64, noop: Bool, data: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ term &* 0x9E37_79B9_7F4A_7C15 ^ (noop ? 1 : 2)
        for byte in data {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }

    static func encode(_ prints: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(prints.count * 8)
        for value in prints { for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [UInt64] {
        stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map { start in
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[start + $1]) << UInt64(8 * $1) }
        }
    }
}
