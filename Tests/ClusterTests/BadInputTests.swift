import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing
import Wire

/// Garbage on the client port of a gateway and of a kvd: a clear error, that connection
/// closed, everyone else served, nothing lost.
@Suite(.serialized)
struct BadInputTests {
    @Test(arguments: ["gateway", "kvd"])
    func malformedInputWhileAClientKeepsWorking(_ target: String) throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 1))
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        let endpoint = target == "gateway" ? cluster.gatewayEndpoints[0] : cluster.kvdEndpoints[leader - 1]
        let clerk = Clerk(endpoints: [endpoint], operationTimeoutMs: 10_000)
        var expected: [UInt8] = []
        func appendOne(_ i: Int) {
            let element = Array("[\(i)]".utf8)
            if case let .completed(response) = clerk.append(Array("steady".utf8), element), response.status == .ok {
                expected += element
            } else {
                Issue.record("append \(i) failed while bad input was sent\n\(cluster.logs())")
            }
        }

        // Bodies that do not decode: answered BAD_REQUEST with request_id 0, then closed.
        for (i, garbage) in [[0xff, 0xff, 0xff], [0x0a, 0xff], [0x0f], Array(repeating: UInt8(0xee), count: 100)].enumerated() {
            let connection = KVConnection(endpoint: endpoint)
            var frame: [UInt8] = []
            Framing.appendFrame(body: garbage.map { UInt8($0) }, to: &frame)
            let response = try connection.sendRaw(frame, timeoutMs: 3000)
            #expect(response.status == .badRequest && response.requestID == 0)
            #expect(!response.message.isEmpty)
            #expect(connection.waitForClose(timeoutMs: 3000), "connection left open after a malformed frame")
            appendOne(i)
        }

        // A length over the limit (0xFFFFFFFF): answered, then closed, before any body arrives.
        let huge = KVConnection(endpoint: endpoint)
        let response = try huge.sendRaw([0xff, 0xff, 0xff, 0xff, 1, 2, 3], timeoutMs: 3000)
        #expect(response.status == .badRequest && response.requestID == 0)
        #expect(huge.waitForClose(timeoutMs: 3000))
        appendOne(10)

        // A zero-length frame is an empty request (empty key): BAD_REQUEST, connection stays.
        let empty = KVConnection(endpoint: endpoint)
        let emptyResponse = try empty.sendRaw([0, 0, 0, 0], timeoutMs: 3000)
        #expect(emptyResponse.status == .badRequest)
        #expect(empty.isOpen)
        let stillWorks = try empty.call(KvRequest(clientID: 0, op: .put, key: Array("z".utf8), value: [1]), timeoutMs: 5000)
        #expect(stillWorks.status == .ok || stillWorks.status == .wrongLeader)

        // Invalid requests that decode: each refused with a reason; the connection stays.
        let invalid = [
            KvRequest(op: Op(rawValue: 42), key: [1]),
            KvRequest(op: .put, key: []),
            KvRequest(clientID: 7, seq: 0, op: .put, key: [1]),
            KvRequest(op: .put, key: [1], value: Array(repeating: 0, count: 5 * 1024 * 1024)),
        ]
        for request in invalid {
            // Generous: a 5 MiB frame through a debug build on a loaded 2-core machine took up to 9 s.
            let answer = try empty.call(request, timeoutMs: 30_000)
            #expect(answer.status == .badRequest, "\(request.op) key=\(request.key.count)B value=\(request.value.count)B")
            #expect(!answer.message.isEmpty)
        }

        // A truncated frame, then the peer goes away.
        let truncated = KVConnection(endpoint: endpoint)
        _ = try? truncated.sendRaw([0, 0, 0, 50, 1, 2, 3], timeoutMs: 200)
        truncated.close()

        // 1,000 connections opened and dropped.
        for _ in 0..<1000 {
            let connection = KVConnection(endpoint: endpoint)
            _ = try? connection.sendRaw([], timeoutMs: 1)
            connection.close()
        }
        appendOne(11)

        guard case let .completed(final) = clerk.get(Array("steady".utf8)) else {
            Issue.record("final read failed")
            return
        }
        #expect(final.value == expected, "acknowledged appends lost or duplicated")
        for process in cluster.allProcesses { #expect(process.isRunning, "\(process.name) died") }
    }
}
