import Foundation
import Wire
import Raft
import SeededRandom

enum TestSeed {
    /// The base seed for this run: `WIRE_TEST_SEED` if set, else a fixed default.
    static let base: UInt64 = ProcessInfo.processInfo.environment["WIRE_TEST_SEED"].flatMap { UInt64($0) } ?? 0x5EED_CAFE

    /// A generator for one test, derived from the base seed and a per-test salt so tests
    /// do not depend on each other's consumption of random numbers.
    static func generator(_ salt: UInt64) -> (seed: UInt64, rng: SeededGenerator) {
        let seed = base ^ (salt &* 0x9E37_79B9_7F4A_7C15)
        return (seed, SeededGenerator(seed: seed))
    }
}

extension RandomNumberGenerator {
    mutating func bytes(count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            let word = next()
            for shift in stride(from: 0, to: 64, by: 8) where out.count < count {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }

    /// Mostly short byte strings (NUL bytes included), sometimes empty, sometimes a few KiB.
    mutating func bytes(upTo maxCount: Int = 64) -> [UInt8] {
        switch Int.random(in: 0..<10, using: &self) {
        case 0: return []
        case 1: return bytes(count: Int.random(in: 0...4096, using: &self))
        default: return bytes(count: Int.random(in: 0...maxCount, using: &self))
        }
    }

    /// A UInt64 covering every varint length: 0, small, powers of two, UInt64.max.
    mutating func varintValue() -> UInt64 {
        switch Int.random(in: 0..<6, using: &self) {
        case 0: return 0
        case 1: return UInt64.random(in: 0...127, using: &self)
        case 2: return UInt64.max
        case 3: return UInt64(1) << UInt64.random(in: 0...63, using: &self)
        default: return next() >> UInt64.random(in: 0...63, using: &self)
        }
    }

    /// A string without NUL (protobuf-c strings are C strings), mixing ASCII and non-ASCII.
    mutating func string(maxLength: Int = 24) -> String {
        let alphabet = Array("abcXYZ019 -_:./é日本🙂\t\n\"\\")
        let length = Int.random(in: 0...maxLength, using: &self)
        return String((0..<length).map { _ in alphabet.randomElement(using: &self)! })
    }

    mutating func bool() -> Bool { Bool.random(using: &self) }

    /// Damages a non-empty valid encoding: either truncates it, or overwrites a few bytes with
    /// random ones.
    mutating func mutate(_ body: inout [UInt8]) {
        if bool() {
            body.removeLast(Int.random(in: 1...body.count, using: &self))
        } else {
            for _ in 0..<Int.random(in: 1...3, using: &self) {
                body[Int.random(in: 0..<body.count, using: &self)] = UInt8.random(in: 0...255, using: &self)
            }
        }
    }
}

/// Every `WireMessage` type behind one Sendable value, for parameterized tests.
struct Codec: Sendable, CustomStringConvertible {
    let description: String
    /// Distinct per type, to derive each type's random seed.
    let salt: UInt64
    /// Decodes a body; if that succeeds, encodes the value and decodes it again.
    /// Returns whether the second decode succeeded and produced an equal value.
    let decodeIsStable: @Sendable (ArraySlice<UInt8>) throws(WireError) -> Bool
    /// A valid serialized random message of this type.
    let randomBody: @Sendable (inout SeededGenerator) -> [UInt8]

    static func of<M: WireMessage & Equatable>(
        _: M.Type, salt: UInt64, random: @escaping @Sendable (inout SeededGenerator) -> M
    ) -> Codec {
        Codec(description: "\(M.self)", salt: salt, decodeIsStable: { body throws(WireError) in
            let first = try M(serialized: body)
            guard let second = try? M(serialized: first.serialized()) else { return false }
            return first == second
        }, randomBody: { random(&$0).serialized() })
    }

    static let all: [Codec] = [
        .of(KvRequest.self, salt: 1) { $0.kvRequest() },
        .of(KvResponse.self, salt: 2) { $0.kvResponse() },
        .of(NodeStatus.self, salt: 3) { $0.nodeStatus() },
        .of(PeerMessage.self, salt: 4) { $0.peerMessage() },
        .of(KvdToRaft.self, salt: 5) { $0.kvdToRaft() },
        .of(RaftToKvd.self, salt: 6) { $0.raftToKvd() },
        .of(CommandBatch.self, salt: 7) { $0.commandBatch() },
    ]
}

/// Encodes `message` without a frame header and decodes it back.
func roundTrip<M: WireMessage>(_ message: M) throws(WireError) -> M {
    try M(serialized: message.serialized())
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
}
