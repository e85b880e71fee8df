import Wire

/// Why a request is refused before it reaches the log (`STATUS_BAD_REQUEST`), or nil.
enum RequestValidation {
    static func problem(with request: KvRequest, config: KVServerConfig) -> String? {
        guard request.op.isKnown, request.op != .status else {
            return "op \(request.op.rawValue) is not one of OP_GET, OP_PUT, OP_APPEND, OP_DELETE, OP_STATUS"
        }
        if request.key.isEmpty { return "key is empty" }
        if request.clientID != 0 && request.seq == 0 { return "seq must start at 1 for a nonzero client_id" }
        if request.key.count > config.maxKeyBytes {
            return "key of \(request.key.count) bytes exceeds the limit of \(config.maxKeyBytes)"
        }
        if request.value.count > config.maxValueBytes {
            return "value of \(request.value.count) bytes exceeds the limit of \(config.maxValueBytes)"
        }
        return nil
    }
}
