/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI, ext4 and most WALs.
///
/// Table-driven slicing-by-8: eight 256-entry tables let the loop fold eight input bytes
/// per iteration instead of one, which matters because recovery checksums every byte of the log.
public enum CRC32C {
    /// Checksum of `bytes`, continuing from `crc` (the value a previous call returned; 0 to start).
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        var result: UInt32?
        _ = bytes.withContiguousStorageIfAvailable { buffer in
            result = checksum(UnsafeRawBufferPointer(buffer), continuing: crc)
        }
        if let result { return result }
        let copy = Array(bytes)
        return copy.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// Checksum of raw memory, continuing from `crc` (0 to start).
    public static func checksum(_ buffer: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = buffer.baseAddress else { return crc }
        var state = ~crc
        var position = 0
        let count = buffer.count
        tables.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            while count - position >= 8 {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                let low = UInt32(truncatingIfNeeded: word) ^ state
                let high = UInt32(truncatingIfNeeded: word >> 32)
                state = t[7 * 256 + Int(low & 0xFF)]
                    ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)]
                    ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ t[Int(high >> 24)]
                position += 8
            }
            while position < count {
                let byte = base.load(fromByteOffset: position, as: UInt8.self)
                state = t[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8)
                position += 1
            }
        }
        return ~state
    }

    /// Eight tables of 256 entries, flattened: table k at offset k * 256.
    /// Table 0 is the classic byte-at-a-time table; table k advances a byte through k more zero bytes.
    private static let tables: [UInt32] = {
        let polynomial: UInt32 = 0x82F6_3B78
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
            }
            tables[byte] = crc
        }
        for byte in 0..<256 {
            var crc = tables[byte]
            for k in 1..<8 {
                crc = tables[Int(crc & 0xFF)] ^ (crc >> 8)
                tables[k * 256 + byte] = crc
            }
        }
        return tables
    }()
}
