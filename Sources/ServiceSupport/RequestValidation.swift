import Wire

/// Why a request is refused before it reaches the log (`STATUS_BAD_REQUEST`), or nil.
/// kvd checks every request; a gateway checks too, so a doomed request costs no hop.
public enum RequestValidation {
    public static let defaultMaxKeyBytes = Limits.standard.maxKeyBytes
    public static let defaultMaxValueBytes = Limits.standard.maxValueBytes

    public static func problem(with request: KvRequest, maxKeyBytes: Int, maxValueBytes: Int) -> String? {
        guard request.op.isKnown, request.op != .status else {
            return "op \(request.op.rawValue) is not one of OP_GET, OP_PUT, OP_APPEND, OP_DELETE, OP_STATUS, OP_MEMBER"
        }
        // Membership commands carry no key; raftd checks them.
        if request.op == .member { return request.member == nil ? "OP_MEMBER without a member command" : nil }
        if request.key.isEmpty { return "key is empty" }
        if request.clientID != 0 && request.seq == 0 { return "seq must start at 1 for a nonzero client_id" }
        if request.key.count > maxKeyBytes {
            return "key of \(request.key.count) bytes exceeds the limit of \(maxKeyBytes)"
        }
        if request.value.count > maxValueBytes {
            return "value of \(request.value.count) bytes exceeds the limit of \(maxValueBytes)"
        }
        return nil
    }
}
