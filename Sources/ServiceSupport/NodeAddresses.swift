import ArgumentParser

/// A `1=HOST:PORT,2=HOST:PORT,…` flag value: node id → address, as given.
public struct NodeAddresses: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    public var byID: [UInt64: String]

    public init(_ byID: [UInt64: String]) {
        self.byID = byID
    }

    public init?(argument: String) {
        guard let parsed = try? NodeAddresses.parse(argument) else { return nil }
        self = parsed
    }

    /// Parses the flag text, saying exactly what is wrong.
    public static func parse(_ text: String) throws -> NodeAddresses {
        var byID: [UInt64: String] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let id = UInt64(parts[0].trimmingCharacters()), id > 0 else {
                throw ValidationError("'\(item)' is not ID=HOST:PORT with a positive node id")
            }
            let address = parts[1].trimmingCharacters()
            guard address.contains(":") else { throw ValidationError("'\(item)': address needs HOST:PORT") }
            guard byID[id] == nil else { throw ValidationError("node id \(id) appears twice") }
            byID[id] = address
        }
        guard !byID.isEmpty else { throw ValidationError("no nodes given") }
        return NodeAddresses(byID)
    }

    public var ids: [UInt64] { byID.keys.sorted() }

    public var description: String {
        ids.map { "\($0)=\(byID[$0]!)" }.joined(separator: ",")
    }

    public static var defaultCompletionKind: CompletionKind { .default }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
