// Exactly-once check for append workloads: each client appends distinct elements
// "x <client> <index> y" to one key; the final value must contain every acknowledged element
// exactly once, every unacknowledged one at most once, nothing else, and each client's
// elements in the order that client appended them.

/// The element format used by append workloads: "x <clientID> <index> y".
public enum AppendElement {
    public static func make(clientID: Int, index: Int) -> String { "x \(clientID) \(index) y" }

    public static func bytes(clientID: Int, index: Int) -> [UInt8] {
        Array(make(clientID: clientID, index: index).utf8)
    }

    /// Splits a value that is a concatenation of elements into (clientID, index) pairs, in
    /// order; fails with a description if the value is not such a concatenation.
    public static func parse(_ value: [UInt8]) -> Result<[(clientID: Int, index: Int)], ParseError> {
        var out: [(clientID: Int, index: Int)] = []
        var i = 0
        func expect(_ c: UInt8) -> Bool {
            guard i < value.count, value[i] == c else { return false }
            i += 1
            return true
        }
        func number() -> Int? {
            var v = 0
            let start = i
            while i < value.count, value[i] >= 0x30, value[i] <= 0x39, i - start < 18 {
                v = v * 10 + Int(value[i] - 0x30)
                i += 1
            }
            return i > start ? v : nil
        }
        while i < value.count {
            let start = i
            guard expect(UInt8(ascii: "x")), expect(UInt8(ascii: " ")), let c = number(),
                expect(UInt8(ascii: " ")), let k = number(), expect(UInt8(ascii: " ")),
                expect(UInt8(ascii: "y"))
            else {
                let context = renderBytes(Array(value[start..<min(value.count, start + 24)]))
                return .failure(ParseError(offset: start, message: "not an element at byte \(start): \(context)"))
            }
            out.append((c, k))
        }
        return .success(out)
    }

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let offset: Int
        public let message: String
        public var description: String { message }
    }
}

/// One append a client issued, in the client's order.
public struct AppendAttempt: Sendable, Hashable {
    /// Element index: the element is `AppendElement.make(clientID:index:)`.
    public var index: Int
    /// True if the service acknowledged the append (it must then be present exactly once).
    public var acknowledged: Bool

    public init(index: Int, acknowledged: Bool) {
        self.index = index
        self.acknowledged = acknowledged
    }
}

public enum AppendsCheckResult: Sendable, Equatable, CustomStringConvertible {
    case ok
    /// One line per problem found.
    case violation(String)

    public var description: String {
        switch self {
        case .ok: return "ok"
        case .violation(let s): return s
        }
    }
}

extension LinearizabilityChecker {
    /// Checks a key's final value against what each client appended to it.
    /// - Parameters:
    ///   - finalValue: the key's value as read at the end (empty if missing).
    ///   - appends: per client ID, the appends it issued, in issue order.
    public static func checkAppendsExactlyOnce(
        finalValue: [UInt8], appends: [Int: [AppendAttempt]]
    ) -> AppendsCheckResult {
        let elements: [(clientID: Int, index: Int)]
        switch AppendElement.parse(finalValue) {
        case .failure(let e): return .violation("final value is malformed: \(e.message)")
        case .success(let els): elements = els
        }
        // Position of each attempted element in its client's issue order.
        struct ElementID: Hashable {
            let client: Int
            let index: Int
        }
        var issuePosition: [ElementID: Int] = [:]
        for (client, list) in appends {
            for (pos, a) in list.enumerated() { issuePosition[ElementID(client: client, index: a.index)] = pos }
        }
        var problems: [String] = []
        var seen: [ElementID: Int] = [:]  // element -> position in the final value
        var lastIssuePos: [Int: (issue: Int, at: Int)] = [:]  // per client: last element seen
        for (at, el) in elements.enumerated() {
            let id = ElementID(client: el.clientID, index: el.index)
            let name = "\"\(AppendElement.make(clientID: el.clientID, index: el.index))\""
            guard let pos = issuePosition[id] else {
                problems.append("element \(name) at position \(at) was never appended")
                continue
            }
            if let first = seen[id] {
                problems.append("element \(name) appears more than once (positions \(first) and \(at))")
                continue
            }
            seen[id] = at
            if let last = lastIssuePos[el.clientID], last.issue > pos {
                let prevIndex = appends[el.clientID]![last.issue].index
                let prevName = "\"\(AppendElement.make(clientID: el.clientID, index: prevIndex))\""
                problems.append(
                    "client \(el.clientID)'s elements are out of order: \(name) (appended earlier) is at"
                        + " position \(at), after \(prevName) at position \(last.at)")
            }
            if lastIssuePos[el.clientID].map({ $0.issue < pos }) ?? true {
                lastIssuePos[el.clientID] = (pos, at)
            }
        }
        for client in appends.keys.sorted() {
            for a in appends[client]! where a.acknowledged && seen[ElementID(client: client, index: a.index)] == nil {
                problems.append(
                    "acknowledged element \"\(AppendElement.make(clientID: client, index: a.index))\" is missing")
            }
        }
        if problems.isEmpty { return .ok }
        let shown = problems.prefix(20).joined(separator: "\n")
        let more = problems.count > 20 ? "\n… \(problems.count - 20) more problems" : ""
        return .violation(
            "appends not exactly-once (\(elements.count) elements in final value):\n\(shown)\(more)")
    }
}
