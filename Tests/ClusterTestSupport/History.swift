// History: the record of client operations that the linearizability checker judges.
//
// Note: Foundation also exports a type named `Operation` (NSOperation). A file that imports
// both Foundation and ClusterTestSupport can say `ClusterTestSupport.Operation` or use the
// `KVOperation` alias below.

import Foundation

/// One client operation on the key/value service, with its real-time interval.
public struct Operation: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case get, put, append, delete
    }

    /// What the service answered. Gets answer `.value` or `.missing`; deletes answer
    /// `.existed`; puts and appends answer `.none`.
    public enum Output: Sendable, Hashable {
        case none
        case value([UInt8])
        case missing
        case existed(Bool)
    }

    public enum Outcome: Sendable, Hashable {
        /// Completed with a known result, which took effect between `call` and `return`.
        case ok
        /// Timed out or lost: may or may not have taken effect, at any time after `call`.
        /// `return` and `output` are ignored (the return time is treated as +infinity).
        case unknown
    }

    public var clientID: Int
    public var kind: Kind
    public var key: [UInt8]
    /// Input value of a put or append; ignored for get and delete.
    public var value: [UInt8]
    public var output: Output
    /// Monotonic nanoseconds at invocation.
    public var call: UInt64
    /// Monotonic nanoseconds at response (ignored when `outcome == .unknown`).
    public var `return`: UInt64
    public var outcome: Outcome

    public init(
        clientID: Int, kind: Kind, key: [UInt8], value: [UInt8] = [], output: Output = .none,
        call: UInt64, return ret: UInt64, outcome: Outcome = .ok
    ) {
        self.clientID = clientID
        self.kind = kind
        self.key = key
        self.value = value
        self.output = output
        self.call = call
        self.return = ret
        self.outcome = outcome
    }

    // MARK: Convenience constructors (String keys and values are UTF-8 encoded).

    /// A completed get. `nil` output means the key was missing.
    public static func get(
        client: Int, _ key: String, _ output: String?, call: UInt64, return ret: UInt64
    ) -> Operation {
        Operation(
            clientID: client, kind: .get, key: Array(key.utf8),
            output: output.map { .value(Array($0.utf8)) } ?? .missing, call: call, return: ret)
    }

    public static func put(
        client: Int, _ key: String, _ value: String, call: UInt64, return ret: UInt64,
        outcome: Outcome = .ok
    ) -> Operation {
        Operation(
            clientID: client, kind: .put, key: Array(key.utf8), value: Array(value.utf8),
            call: call, return: ret, outcome: outcome)
    }

    public static func append(
        client: Int, _ key: String, _ value: String, call: UInt64, return ret: UInt64,
        outcome: Outcome = .ok
    ) -> Operation {
        Operation(
            clientID: client, kind: .append, key: Array(key.utf8), value: Array(value.utf8),
            call: call, return: ret, outcome: outcome)
    }

    /// A delete; `existed` is its answer (ignored when `outcome == .unknown`).
    public static func delete(
        client: Int, _ key: String, existed: Bool, call: UInt64, return ret: UInt64,
        outcome: Outcome = .ok
    ) -> Operation {
        Operation(
            clientID: client, kind: .delete, key: Array(key.utf8), output: .existed(existed),
            call: call, return: ret, outcome: outcome)
    }

    public var description: String { describe(origin: 0) }

    /// "[client 3] append("k", "x") [1.200µs, 3.000µs]", times relative to `origin`.
    func describe(origin: UInt64) -> String {
        var s = "[client \(clientID)] \(kind.rawValue)(\(renderBytes(key))"
        switch kind {
        case .put, .append: s += ", \(renderBytes(value)))"
        case .get, .delete: s += ")"
        }
        if outcome == .unknown {
            s += " -> ?"
        } else {
            switch output {
            case .none: break
            case .missing: s += " -> missing"
            case .value(let v): s += " -> \(renderBytes(v))"
            case .existed(let e): s += " -> existed=\(e)"
            }
        }
        let c = renderTime(call, origin: origin)
        let r = outcome == .unknown ? "∞ (outcome unknown)" : renderTime(self.return, origin: origin)
        return s + " [\(c), \(r)]"
    }
}

/// Alias for files that also import Foundation (whose `Operation` would be ambiguous).
public typealias KVOperation = Operation

/// Monotonic nanoseconds since an arbitrary process-wide origin (ContinuousClock).
public func monotonicNanoseconds() -> UInt64 {
    let d = ContinuousClock.now - processClockOrigin
    let (s, attos) = d.components
    return UInt64(max(0, s)) &* 1_000_000_000 &+ UInt64(max(0, attos) / 1_000_000_000)
}

private let processClockOrigin = ContinuousClock.now

/// Thread-safe recorder of a concurrent history. Clerks call `begin` just before sending a
/// request and `end`/`endUnknown` after the answer (or give-up), from any thread.
public final class HistoryRecorder: @unchecked Sendable {
    /// Handle of an operation in progress.
    public struct Token: Sendable, Hashable {
        public let index: Int
    }

    private let lock = NSLock()
    // Guarded by `lock`.
    private var ops: [Operation] = []
    private var finished: [Bool] = []

    public init() {}

    /// Records the invocation of an operation; its call time is taken now.
    public func begin(clientID: Int, kind: Operation.Kind, key: [UInt8], value: [UInt8] = []) -> Token {
        lock.lock()
        defer { lock.unlock() }
        let now = monotonicNanoseconds()
        ops.append(
            Operation(
                clientID: clientID, kind: kind, key: key, value: value, output: .none,
                call: now, return: now, outcome: .unknown))
        finished.append(false)
        return Token(index: ops.count - 1)
    }

    /// Records a completed operation's result; its return time is taken now.
    /// Gets answer `.value`/`.missing`, deletes `.existed`, puts/appends `.none`.
    public func end(_ token: Token, output: Operation.Output = .none) {
        let now = monotonicNanoseconds()
        lock.lock()
        defer { lock.unlock() }
        precondition(!finished[token.index], "HistoryRecorder: operation \(token.index) ended twice")
        finished[token.index] = true
        ops[token.index].output = output
        ops[token.index].return = max(now, ops[token.index].call)
        ops[token.index].outcome = .ok
    }

    /// Records that the operation's outcome is unknown (timeout, lost connection).
    public func endUnknown(_ token: Token) {
        let now = monotonicNanoseconds()
        lock.lock()
        defer { lock.unlock() }
        precondition(!finished[token.index], "HistoryRecorder: operation \(token.index) ended twice")
        finished[token.index] = true
        ops[token.index].return = max(now, ops[token.index].call)
        ops[token.index].outcome = .unknown
    }

    /// Snapshot of the history so far. Operations not yet ended appear with outcome `.unknown`.
    public var operations: [Operation] {
        lock.lock()
        defer { lock.unlock() }
        return ops
    }

    public var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return ops.count
    }
}

// MARK: Rendering helpers

/// Printable ASCII as a quoted string, otherwise hex; long values are abbreviated.
func renderBytes(_ b: [UInt8], limit: Int = 48) -> String {
    let printable = b.allSatisfy { $0 >= 0x20 && $0 < 0x7f && $0 != 0x22 && $0 != 0x5c }
    func piece(_ s: ArraySlice<UInt8>) -> String {
        if printable { return String(decoding: s, as: UTF8.self) }
        return s.map { byte in
            let h = String(byte, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
    }
    let body: String
    if b.count <= limit {
        body = piece(b[...])
    } else {
        let head = limit * 2 / 3
        let tail = limit - head
        body = piece(b[..<head]) + "…" + piece(b[(b.count - tail)...])
    }
    let quoted = printable ? "\"\(body)\"" : "0x\(body)"
    return b.count <= limit ? quoted : "\(quoted) (\(b.count) bytes)"
}

func renderTime(_ t: UInt64, origin: UInt64) -> String {
    let rel = Int64(bitPattern: t &- origin)
    let sign = rel < 0 ? "-" : ""
    let m = rel.magnitude
    let us = m / 1000
    let frac = m % 1000
    let fs = String(frac)
    return "\(sign)\(us).\(String(repeating: "0", count: 3 - fs.count))\(fs)µs"
}
