import Raft

/// The framing and payloads of WAL records. All integers little-endian.
///
///     record     = u32 payloadLength | u32 crc32c(type byte + payload) | u8 type | payload
///     type 1     = entries:    u64 firstIndex | u32 count | count × (u64 term | u8 kind | u32 dataLength | data)
///     type 2     = hard state: u64 term | u64 vote | u64 commit
///     type 3     = reset:      u64 index | u64 term
///
/// An entries record at first index i means "the log from i on is these entries": replay discards
/// everything at or after i before applying it, so overwriting a suffix never rewrites old bytes.
/// A reset record (index, term) means "the log restarts after (index, term)": an installed snapshot
/// replaced the whole log, so replay discards every entry and the next entry is index + 1.
/// Every segment after the first starts with a hard state record (the state as of the end of
/// the segment before), so the hard state survives when compaction deletes older segments.
/// Type 0 is never valid and the CRC covers the type, so a zero-filled tail never parses as a record.
enum WALRecord {
    enum Kind: UInt8 {
        case entries = 1
        case hardState = 2
        case reset = 3
    }

    static let headerSize = 9
    /// Bounds a record (and the memory a garbage length could make recovery want).
    static let maxPayloadSize = 64 << 20
    static let entriesHeaderSize = 12
    static let entryHeaderSize = 13
    static let hardStatePayloadSize = 24
    static let resetPayloadSize = 16

    /// Largest `data` one entry may carry.
    static let maxEntryDataSize = maxPayloadSize - entriesHeaderSize - entryHeaderSize

    // MARK: Encoding

    /// Appends one or more entries records holding `entries` (split so no payload exceeds the limit).
    /// The caller has checked indexes are consecutive and each entry fits.
    static func appendEntries(_ entries: [Entry], to buffer: inout [UInt8]) {
        var start = 0
        while start < entries.count {
            var end = start
            var payloadSize = entriesHeaderSize
            while end < entries.count, end == start || payloadSize + entryHeaderSize + entries[end].data.count <= maxPayloadSize {
                payloadSize += entryHeaderSize + entries[end].data.count
                end += 1
            }
            let recordStart = beginRecord(.entries, in: &buffer, reserving: payloadSize)
            buffer.appendLittleEndian(entries[start].index)
            buffer.appendLittleEndian(UInt32(end - start))
            for entry in entries[start..<end] {
                buffer.appendLittleEndian(entry.term)
                buffer.append(entry.kind.rawValue)
                buffer.appendLittleEndian(UInt32(entry.data.count))
                buffer.append(contentsOf: entry.data)
            }
            finishRecord(startingAt: recordStart, in: &buffer)
            start = end
        }
    }

    static func appendHardState(_ state: HardState, to buffer: inout [UInt8]) {
        let recordStart = beginRecord(.hardState, in: &buffer, reserving: hardStatePayloadSize)
        buffer.appendLittleEndian(state.term)
        buffer.appendLittleEndian(state.vote)
        buffer.appendLittleEndian(state.commit)
        finishRecord(startingAt: recordStart, in: &buffer)
    }

    static func appendReset(index: UInt64, term: UInt64, to buffer: inout [UInt8]) {
        let recordStart = beginRecord(.reset, in: &buffer, reserving: resetPayloadSize)
        buffer.appendLittleEndian(index)
        buffer.appendLittleEndian(term)
        finishRecord(startingAt: recordStart, in: &buffer)
    }

    /// Writes a header with placeholder length and CRC; `finishRecord` fills them in once the payload is known.
    private static func beginRecord(_ kind: Kind, in buffer: inout [UInt8], reserving payloadSize: Int) -> Int {
        let start = buffer.count
        // Geometric growth: an exact reserve per record would copy the whole batch each time.
        let needed = start + headerSize + payloadSize
        if buffer.capacity < needed { buffer.reserveCapacity(max(needed, buffer.capacity * 2)) }
        buffer.append(contentsOf: repeatElement(0, count: 8))
        buffer.append(kind.rawValue)
        return start
    }

    private static func finishRecord(startingAt start: Int, in buffer: inout [UInt8]) {
        let payloadSize = buffer.count - start - headerSize
        let crc = buffer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 8)...])) }
        buffer.storeLittleEndian(UInt32(payloadSize), at: start)
        buffer.storeLittleEndian(crc, at: start + 4)
    }

    // MARK: Decoding

    enum Framing {
        /// A whole record whose checksum matches; `next` is the offset just past it.
        case record(Kind, payload: Range<Int>, next: Int)
        /// Not a valid record here: torn, zeroed, or corrupt — the caller decides which from what follows.
        case damaged(reason: String)
    }

    /// Frames the record starting at `offset` in `bytes` (a whole segment in memory).
    static func frame(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Framing {
        let available = bytes.count - offset
        guard available >= headerSize else {
            return .damaged(reason: "incomplete header: \(available) of \(headerSize) bytes")
        }
        let length = Int(bytes.loadLittleEndian(at: offset, as: UInt32.self))
        let typeByte = bytes[offset + 8]
        guard let kind = Kind(rawValue: typeByte) else {
            return .damaged(reason: "unknown record type \(typeByte)")
        }
        guard length <= maxPayloadSize else {
            return .damaged(reason: "record length \(length) over the \(maxPayloadSize)-byte limit")
        }
        guard length <= available - headerSize else {
            return .damaged(reason: "incomplete payload: \(available - headerSize) of \(length) bytes")
        }
        let stored = bytes.loadLittleEndian(at: offset + 4, as: UInt32.self)
        let end = offset + headerSize + length
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<end]))
        guard stored == computed else {
            return .damaged(reason: "checksum mismatch: stored \(hex32(stored)), computed \(hex32(computed))")
        }
        return .record(kind, payload: (offset + headerSize)..<end, next: end)
    }

    /// Offset of the first valid record after `offset`, if any: tells a torn tail (nothing valid follows) from corruption.
    static func firstValidRecord(in bytes: UnsafeRawBufferPointer, after offset: Int) -> Int? {
        var candidate = offset + 1
        while candidate + headerSize <= bytes.count {
            // Cheap filters first: most offsets fail on the type byte, so few reach the CRC.
            if Kind(rawValue: bytes[candidate + 8]) != nil, case .record = frame(bytes, at: candidate) {
                return candidate
            }
            candidate += 1
        }
        return nil
    }

    /// First index of an entries payload, so replay can discard the suffix it replaces.
    static func firstIndex(ofEntries payload: UnsafeRawBufferPointer) -> UInt64? {
        guard payload.count >= entriesHeaderSize else { return nil }
        return payload.loadLittleEndian(at: 0, as: UInt64.self)
    }

    /// Appends the entries of a checksummed entries payload to `log`; returns why it is malformed, or nil.
    static func decodeEntries(_ payload: UnsafeRawBufferPointer, appendingTo log: inout [Entry]) -> String? {
        guard payload.count >= entriesHeaderSize else { return "entries record of \(payload.count) bytes" }
        let firstIndex = payload.loadLittleEndian(at: 0, as: UInt64.self)
        let count = Int(payload.loadLittleEndian(at: 8, as: UInt32.self))
        var offset = entriesHeaderSize
        for position in 0..<count {
            guard payload.count - offset >= entryHeaderSize else { return "entry \(position) of \(count) cut short" }
            let term = payload.loadLittleEndian(at: offset, as: UInt64.self)
            let kindByte = payload[offset + 8]
            guard let kind = Entry.Kind(rawValue: kindByte) else { return "entry kind \(kindByte)" }
            let dataLength = Int(payload.loadLittleEndian(at: offset + 9, as: UInt32.self))
            offset += entryHeaderSize
            guard payload.count - offset >= dataLength else { return "entry \(position) data cut short" }
            let data = dataLength == 0 ? [] : [UInt8](UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + dataLength)]))
            offset += dataLength
            log.append(Entry(term: term, index: firstIndex + UInt64(position), kind: kind, data: data))
        }
        guard offset == payload.count else { return "\(payload.count - offset) bytes after the last entry" }
        return nil
    }

    static func decodeReset(_ payload: UnsafeRawBufferPointer) -> (index: UInt64, term: UInt64)? {
        guard payload.count == resetPayloadSize else { return nil }
        return (payload.loadLittleEndian(at: 0, as: UInt64.self), payload.loadLittleEndian(at: 8, as: UInt64.self))
    }

    static func decodeHardState(_ payload: UnsafeRawBufferPointer) -> HardState? {
        guard payload.count == hardStatePayloadSize else { return nil }
        return HardState(
            term: payload.loadLittleEndian(at: 0, as: UInt64.self),
            vote: payload.loadLittleEndian(at: 8, as: UInt64.self),
            commit: payload.loadLittleEndian(at: 16, as: UInt64.self))
    }
}

func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
