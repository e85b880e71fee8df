import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

/// Owns the C memory a protobuf-c message being packed points into (structs, byte
/// copies, strings); everything is freed when the arena goes away, after packing.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { free(pointer) }
    }

    /// A zero-filled C struct of type `T`, to be initialized with its `__init` function.
    func make<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        let raw = calloc(1, MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: 1)
    }

    /// An array of `count` pointers for a repeated message field.
    func pointerArray<T>(of _: T.Type, count: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?> {
        let raw = calloc(max(count, 1), MemoryLayout<UnsafeMutablePointer<T>?>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: UnsafeMutablePointer<T>?.self, capacity: max(count, 1))
    }

    /// A copy of `values` for a repeated scalar field (nil when empty).
    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let raw = calloc(values.count, MemoryLayout<T>.stride)!
        allocations.append(raw)
        let typed = raw.bindMemory(to: T.self, capacity: values.count)
        for (i, value) in values.enumerated() { typed[i] = value }
        return typed
    }

    func bytes(_ value: [UInt8]) -> ProtobufCBinaryData {
        guard !value.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let raw = malloc(value.count)!
        allocations.append(raw)
        value.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return ProtobufCBinaryData(len: value.count, data: raw.assumingMemoryBound(to: UInt8.self))
    }

    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(value)!
        allocations.append(UnsafeMutableRawPointer(copy))
        return copy
    }
}

/// Conversions from what protobuf-c unpacked into Swift values.
enum CValue {
    static func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard data.len > 0, let base = data.data else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: data.len))
    }

    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer)
    }
}

/// Packs a built C message as one frame appended to `out`.
func appendPacked<M>(
    _ message: UnsafePointer<M>,
    size: (UnsafePointer<M>) -> Int,
    pack: (UnsafePointer<M>, UnsafeMutablePointer<UInt8>) -> Int,
    framed: Bool,
    to out: inout [UInt8]
) {
    let length = size(message)
    if framed { Framing.appendHeader(length: length, to: &out) }
    guard length > 0 else { return }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length) { scratch in
        let written = pack(message, scratch.baseAddress!)
        precondition(written == length, "protobuf-c packed \(written) bytes, announced \(length)")
        out.append(contentsOf: UnsafeBufferPointer(scratch))
    }
}

/// Unpacks `body` with a protobuf-c unpack function, hands the C message to `convert`,
/// and frees it. protobuf-c returns NULL for anything malformed.
func withUnpacked<M, R>(
    _ body: ArraySlice<UInt8>,
    name: String,
    unpack: (Int, UnsafePointer<UInt8>) -> UnsafeMutablePointer<M>?,
    free: (UnsafeMutablePointer<M>) -> Void,
    _ convert: (UnsafeMutablePointer<M>) throws(WireError) -> R
) throws(WireError) -> R {
    // protobuf-c wants a non-NULL pointer even for an empty body (a valid message with
    // every field at its default).
    let padding: [UInt8] = [0]
    let result: Result<R, WireError> = body.withUnsafeBufferPointer { buffer in
        padding.withUnsafeBufferPointer { pad in
            guard let message = unpack(buffer.count, buffer.baseAddress ?? pad.baseAddress!) else {
                return .failure(.malformed(message: name, bytes: buffer.count))
            }
            defer { free(message) }
            do throws(WireError) {
                return .success(try convert(message))
            } catch {
                return .failure(error)
            }
        }
    }
    return try result.get()
}
