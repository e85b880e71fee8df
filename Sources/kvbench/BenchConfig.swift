import EventLoop
import Wire
import SeededRandom

/// Which operations a run issues.
enum WorkloadOp: String, Sendable, CaseIterable {
    case put, get, append, mixed
}

/// One benchmark target: a gateway or a kvd, optionally with the kvd's node id (so that a
/// WRONG_LEADER hint, which names a node id, can be followed).
struct BenchTarget: Sendable, CustomStringConvertible {
    var nodeID: UInt64?
    var endpoint: Endpoint

    /// Parses `HOST:PORT` or `ID=HOST:PORT`.
    static func parse(_ text: String) -> BenchTarget? {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 {
            guard let id = UInt64(parts[0]), id > 0, let endpoint = Endpoint.parseHostPort(parts[1]) else { return nil }
            return BenchTarget(nodeID: id, endpoint: endpoint)
        }
        guard let endpoint = Endpoint.parseHostPort(text) else { return nil }
        return BenchTarget(nodeID: nil, endpoint: endpoint)
    }

    var description: String {
        if let nodeID { return "\(nodeID)=\(endpoint)" }
        return endpoint.description
    }
}

/// Everything a run needs, parsed from flags.
struct BenchConfig: Sendable {
    var targets: [BenchTarget]
    var clients: Int
    var conns: Int
    var op: WorkloadOp
    /// Share of gets in a mixed workload.
    var readRatio: Double
    var keySize: Int
    var valueSize: Int
    var keys: Int
    /// Measured seconds (when `total` is nil).
    var durationSeconds: Double
    /// Measured operations (overrides `durationSeconds`).
    var total: Int?
    var warmupSeconds: Double
    var preload: Bool
    /// A resent attempt after this long without an answer (the gateway itself answers
    /// UNAVAILABLE after its own deadline, 5 s by default).
    var attemptTimeoutMs: Double
    var label: String
    var progress: Bool
    var seed: UInt64
    /// Mutual TLS to the targets (`--tls-*`).
    var tls: TLSFiles? = nil
}


/// The key space and the values written: built once, before the run.
struct Keyspace {
    let keys: [[UInt8]]
    let values: [[UInt8]]

    /// Key i is `k` followed by i in decimal, zero-padded to `keySize` bytes (longer when
    /// the number does not fit).
    init(count: Int, keySize: Int, valueSize: Int, rng: inout SeededGenerator) {
        keys = (0..<count).map { i in
            let digits = Array(String(i).utf8)
            let pad = max(0, keySize - 1 - digits.count)
            return [UInt8(ascii: "k")] + Array(repeating: UInt8(ascii: "0"), count: pad) + digits
        }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        values = (0..<64).map { _ in
            (0..<valueSize).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        }
    }
}
