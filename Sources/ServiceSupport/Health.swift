/// Whether a process is part of a serving cluster, for `/health` (200 or 503) and `kvctl health`.
public enum Health: Equatable, Sendable {
    case serving
    case notServing(reason: String)

    public var isServing: Bool { self == .serving }

    /// One line of JSON, like etcd's `/health`: `{"health":"true"}` or
    /// `{"health":"false","reason":"…"}`.
    public var json: String {
        switch self {
        case .serving: #"{"health":"true"}"#
        case let .notServing(reason): #"{"health":"false","reason":"\#(Health.escape(reason))"}"#
        }
    }

    public var httpStatus: Int { isServing ? 200 : 503 }

    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += " "
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
