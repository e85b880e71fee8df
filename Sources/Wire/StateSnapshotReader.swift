import CProtobufC

/// Decodes a `kvraft.state.StateSnapshot` as its bytes arrive, one top-level field at a time,
/// so a receiver never holds the whole encoding: only the field being received (at most one
/// pair, plus what arrived of the next) is buffered.
///
/// A protobuf message is a sequence of fields, each a tag (field number and wire type) and a
/// payload whose length the tag and a length prefix tell; a StateSnapshot's fields are two
/// scalars and repeated messages, each small and each complete in itself. Each field is
/// handed over as soon as its last byte is in, in the order it was encoded. Unknown field
/// numbers are skipped, as protobuf requires; a known field with the wrong wire type, a
/// malformed tag or length, or a submessage protobuf-c refuses throws. Scalars and the limits
/// appear once in snapshots kvd writes; if repeated, each occurrence is handed over (the
/// last one counts).
///
/// A truncation exactly at a field boundary cannot be seen in the bytes (a prefix of fields
/// is a valid message): the transfer's announced total size guards against that.
public struct StateSnapshotReader: Sendable {
    /// One top-level field of a StateSnapshot.
    public enum Field: Hashable, Sendable {
        case appliedIndex(UInt64)
        case clockMs(UInt64)
        case pair(KeyValuePair)
        case session(SessionRecord)
        case tombstone(TombstoneRecord)
        case limits(SessionLimits)
    }

    /// The start of a field not yet complete (tag included).
    private var pending: [UInt8] = []
    /// Bytes consumed so far (for error messages).
    public private(set) var offset = 0
    /// Largest field accepted: bounds what a corrupt length prefix can make us buffer.
    public let maxFieldBytes: Int

    public init(maxFieldBytes: Int = Limits.snapshotFieldBytes) {
        precondition(maxFieldBytes > 0)
        self.maxFieldBytes = maxFieldBytes
    }

    /// Bytes held for a field not yet complete.
    public var bufferedBytes: Int { pending.count }

    /// Reads the next bytes of the encoding, appending to `fields` every field they complete.
    public mutating func read(_ bytes: ArraySlice<UInt8>, into fields: inout [Field]) throws(WireError) {
        var input = bytes
        while !input.isEmpty {
            if pending.isEmpty {
                switch try Self.header(of: input, maxFieldBytes: maxFieldBytes, at: offset) {
                case let .complete(fieldBytes) where fieldBytes <= input.count:
                    let end = input.startIndex + fieldBytes
                    try decodeField(input[input.startIndex..<end], into: &fields)
                    offset += fieldBytes
                    input = input[end...]
                default:
                    pending.append(contentsOf: input)
                    input = input[input.endIndex...]
                }
            } else {
                // Grow the header byte by byte (it is at most 20 bytes) until the field's size is known.
                var size: Int?
                while size == nil {
                    if case let .complete(fieldBytes) = try Self.header(of: pending[...], maxFieldBytes: maxFieldBytes, at: offset) {
                        size = fieldBytes
                    } else if let byte = input.first {
                        pending.append(byte)
                        input = input.dropFirst()
                    } else {
                        return  // the rest of the header comes with the next bytes
                    }
                }
                let fieldBytes = size!
                let take = min(fieldBytes - pending.count, input.count)
                pending.append(contentsOf: input.prefix(take))
                input = input.dropFirst(take)
                guard pending.count == fieldBytes else { continue }  // the input is used up
                try decodeField(pending[...], into: &fields)
                offset += fieldBytes
                pending = []
            }
        }
    }

    /// Checks the encoding ended at a field boundary.
    public func finish() throws(WireError) {
        guard pending.isEmpty else {
            throw .invalid("state snapshot ends inside a field: \(pending.count) bytes of a field starting at byte \(offset)")
        }
    }

    /// Reads a whole encoding at once.
    public static func fields(of bytes: ArraySlice<UInt8>) throws(WireError) -> [Field] {
        var reader = StateSnapshotReader(maxFieldBytes: max(1, bytes.count))
        var fields: [Field] = []
        try reader.read(bytes, into: &fields)
        try reader.finish()
        return fields
    }

    private enum Header {
        case incomplete
        /// The whole field (tag, length prefix, payload) is this many bytes.
        case complete(fieldBytes: Int)
    }

    private static func header(of bytes: ArraySlice<UInt8>, maxFieldBytes: Int, at offset: Int) throws(WireError) -> Header {
        guard let (tag, tagBytes) = try varint(bytes, at: offset) else { return .incomplete }
        guard tag >> 3 != 0, tag >> 3 <= 0x1fff_ffff else { throw .invalid("state snapshot has field number \(tag >> 3) at byte \(offset)") }
        switch tag & 7 {
        case 0:
            guard let (_, valueBytes) = try varint(bytes.dropFirst(tagBytes), at: offset) else { return .incomplete }
            return .complete(fieldBytes: tagBytes + valueBytes)
        case 1:
            return .complete(fieldBytes: tagBytes + 8)
        case 5:
            return .complete(fieldBytes: tagBytes + 4)
        case 2:
            guard let (length, lengthBytes) = try varint(bytes.dropFirst(tagBytes), at: offset) else { return .incomplete }
            guard length <= UInt64(max(0, maxFieldBytes - tagBytes - lengthBytes)) else {
                throw .invalid("state snapshot field \(tag >> 3) at byte \(offset) announces \(length) bytes, over the limit of \(maxFieldBytes)")
            }
            return .complete(fieldBytes: tagBytes + lengthBytes + Int(length))
        default:
            throw .invalid("state snapshot field \(tag >> 3) at byte \(offset) has wire type \(tag & 7), which no StateSnapshot field has")
        }
    }

    /// A base-128 varint at the start of `bytes` and its length; nil if `bytes` ends inside it.
    private static func varint(_ bytes: ArraySlice<UInt8>, at offset: Int) throws(WireError) -> (UInt64, Int)? {
        var value: UInt64 = 0
        var count = 0
        for byte in bytes {
            // At most 10 bytes; bits beyond 64 are dropped, as protobuf-c does.
            guard count < 10 else { throw .invalid("state snapshot has a varint longer than 10 bytes at byte \(offset)") }
            value |= UInt64(byte & 0x7f) << (7 * count)
            count += 1
            if byte & 0x80 == 0 { return (value, count) }
        }
        return nil
    }

    private func decodeField(_ field: ArraySlice<UInt8>, into fields: inout [Field]) throws(WireError) {
        guard let (tag, tagBytes) = try Self.varint(field, at: offset) else { preconditionFailure("a complete field has a tag") }
        let number = tag >> 3
        let wireType = tag & 7
        let rest = field.dropFirst(tagBytes)
        func expect(_ type: UInt64) throws(WireError) {
            guard wireType == type else {
                throw .invalid("state snapshot field \(number) at byte \(offset) has wire type \(wireType), not \(type)")
            }
        }
        func payload() -> ArraySlice<UInt8> {
            // Checked by `header`: a length prefix follows, then exactly that many bytes.
            let (_, lengthBytes) = try! Self.varint(rest, at: offset)!
            return rest.dropFirst(lengthBytes)
        }
        switch number {
        case 1:
            try expect(0)
            fields.append(.appliedIndex(try Self.varint(rest, at: offset)!.0))
        case 2:
            try expect(0)
            fields.append(.clockMs(try Self.varint(rest, at: offset)!.0))
        case 3:
            try expect(2)
            fields.append(.pair(try withUnpacked(payload(), name: "StateSnapshot pair at byte \(offset)",
                                                 unpack: { kvraft__state__key_value__unpack(nil, $0, $1) },
                                                 free: { kvraft__state__key_value__free_unpacked($0, nil) }) { KeyValuePair(c: $0) }))
        case 4:
            try expect(2)
            fields.append(.session(try withUnpacked(payload(), name: "StateSnapshot session at byte \(offset)",
                                                    unpack: { kvraft__state__session__unpack(nil, $0, $1) },
                                                    free: { kvraft__state__session__free_unpacked($0, nil) }) { SessionRecord(c: $0) }))
        case 5:
            try expect(2)
            fields.append(.tombstone(try withUnpacked(payload(), name: "StateSnapshot tombstone at byte \(offset)",
                                                      unpack: { kvraft__state__tombstone__unpack(nil, $0, $1) },
                                                      free: { kvraft__state__tombstone__free_unpacked($0, nil) }) { TombstoneRecord(c: $0) }))
        case 6:
            try expect(2)
            fields.append(.limits(try withUnpacked(payload(), name: "StateSnapshot limits at byte \(offset)",
                                                   unpack: { kvraft__state__session_limits__unpack(nil, $0, $1) },
                                                   free: { kvraft__state__session_limits__free_unpacked($0, nil) }) { SessionLimits(c: $0) }))
        default:
            break  // a field this version does not know: skipped
        }
    }
}

extension KeyValuePair {
    init(c p: UnsafePointer<Kvraft__State__KeyValue>) {
        self.init(key: CValue.bytes(p.pointee.key), value: CValue.bytes(p.pointee.value))
    }
}

extension SessionRecord {
    init(c s: UnsafePointer<Kvraft__State__Session>) {
        self.init(clientID: s.pointee.client_id, lastSeq: s.pointee.last_seq,
                  lastStatus: Status(rawValue: Int32(truncatingIfNeeded: s.pointee.last_status.rawValue)),
                  lastValue: CValue.bytes(s.pointee.last_value), lastActiveMs: s.pointee.last_active_ms,
                  lastWasGet: s.pointee.last_was_get != 0)
    }
}

extension TombstoneRecord {
    init(c t: UnsafePointer<Kvraft__State__Tombstone>) {
        self.init(clientID: t.pointee.client_id, atMs: t.pointee.at_ms, lastSeq: t.pointee.last_seq)
    }
}
