import Testing
import Wire

/// Byte-exact cross-checks against the official protobuf encoding. The expected bytes
/// were derived from the wire format by hand and confirmed with
/// `printf '…' | protoc --encode=<type> -I proto proto/<file>.proto | xxd`.
@Suite("Byte-exact encodings")
struct KnownEncodingTests {
    @Test("KvRequest{1, 2, 3, OP_PUT, \"k\", \"v\"}")
    func kvRequest() throws {
        // tag = field << 3 | wire type: 0x08 request_id, 0x10 client_id, 0x18 seq, 0x20 op (varints),
        // 0x2a key, 0x32 value (length-delimited).
        let expected: [UInt8] = [0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x01, 0x2a, 0x01, 0x6b, 0x32, 0x01, 0x76]
        let request = KvRequest(requestID: 1, clientID: 2, seq: 3, op: .put, key: Array("k".utf8), value: Array("v".utf8))
        #expect(request.serialized() == expected)
        #expect(request.framed() == [0, 0, 0, 14] + expected)
        #expect(try KvRequest(serialized: expected) == request)
    }

    @Test("KvResponse with a leader hint and one NodeStatus")
    func kvResponse() throws {
        // request_id: 7 status: STATUS_WRONG_LEADER leader_hint: "n2" nodes { node_id: 1 reachable: true role: "leader" }
        let expected: [UInt8] = [0x08, 0x07, 0x10, 0x02, 0x22, 0x02, 0x6e, 0x32,
                                 0x32, 0x0c, 0x08, 0x01, 0x10, 0x01, 0x1a, 0x06, 0x6c, 0x65, 0x61, 0x64, 0x65, 0x72]
        let response = KvResponse(requestID: 7, status: .wrongLeader, leaderHint: "n2",
                                  nodes: [NodeStatus(nodeID: 1, reachable: true, role: "leader")])
        #expect(response.serialized() == expected)
        #expect(try KvResponse(serialized: expected) == response)
    }

    @Test("PeerMessage append with a noop and a normal entry")
    func peerMessage() throws {
        // from: 1 to: 2 type: MSG_APPEND term: 3
        // entries { term: 3 index: 4 type: ENTRY_NOOP } entries { term: 3 index: 5 data: "x" }
        let expected: [UInt8] = [0x10, 0x01, 0x18, 0x02, 0x20, 0x05, 0x28, 0x03,
                                 0x4a, 0x06, 0x08, 0x03, 0x10, 0x04, 0x18, 0x01,
                                 0x4a, 0x07, 0x08, 0x03, 0x10, 0x05, 0x22, 0x01, 0x78]
        let message = PeerMessage(from: 1, to: 2, type: .append, term: 3,
                                  entries: [LogEntry(term: 3, index: 4, isNoop: true), LogEntry(term: 3, index: 5, data: Array("x".utf8))])
        #expect(message.serialized() == expected)
        #expect(try PeerMessage(serialized: expected) == message)
    }

    @Test("varints: UInt64.max takes 10 bytes, a negative enum takes 10 bytes")
    func varintEdges() throws {
        let max = KvRequest(requestID: UInt64.max)
        #expect(max.serialized() == [0x08] + [UInt8](repeating: 0xff, count: 9) + [0x01])
        // An int32 enum is sign-extended to 64 bits on the wire.
        let negative = KvRequest(op: Op(rawValue: -1))
        #expect(negative.serialized() == [0x20] + [UInt8](repeating: 0xff, count: 9) + [0x01])
    }

    @Test("KvdToRaft oneof cases carry their tag even when empty")
    func emptyOneofCases() throws {
        #expect(KvdToRaft.hello(lastApplied: 0).serialized() == [0x0a, 0x00])
        #expect(KvdToRaft.propose([]).serialized() == [0x12, 0x00])
        #expect(RaftToKvd.committed([]).serialized() == [0x0a, 0x00])
        #expect(RaftToKvd.status(queryID: 0, NodeStatus()).serialized() == [0x22, 0x02, 0x12, 0x00])
    }
}
