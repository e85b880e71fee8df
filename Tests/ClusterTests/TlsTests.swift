import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Logging
import ServiceSupport
import Testing
import Wire

/// A cluster with mutual TLS on every link: clients with the CA's certificates are served;
/// a plaintext client, a certificate from another CA, an expired certificate, a client
/// certificate at kvd and a node certificate claiming another node's id are refused, each
/// logged, and the processes keep serving.
@Suite(.serialized)
struct TlsTests {
    @Test func mutualTlsServesAndRefuses() throws {
        let certs = try TlsTestCertificates(nodes: 3)
        defer { certs.remove() }
        var options = ClusterOptions()
        // Gateway 2 admits only client certificates naming `client`.
        options.gateways = 2
        // raftd 2 presents node 3's certificate (installed at its own paths): it claims to be
        // node 2 but is not.
        try certs.install("node-3", as: "raftd-2")
        let operatorPorts = try OperatorPorts(nodes: 3, gateways: 2)
        options.extraArguments = { kind, number in
            let metrics = ["--metrics-listen", "127.0.0.1:\(operatorPorts.port(kind, number))"]
            switch kind {
            case .raftd: return certs.flags(number == 2 ? "raftd-2" : "node-\(number)") + metrics
            case .kvd: return certs.flags("node-\(number)") + metrics
            case .gateway: return certs.flags("gateway") + metrics + (number == 2 ? ["--allowed-client-names", "client"] : [])
            }
        }
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let gateway = cluster.gatewayEndpoints[0]
        let good = try TLSContext(files: certs.files("client"))

        // Each server exports when the certificate it presents expires (scripts/certs: 825 days).
        let expected = Date().timeIntervalSince1970 + 825 * 86_400
        for (kind, number) in [(ClusterProcess.Kind.raftd, 1), (.kvd, 1), (.gateway, 1)] {
            var expiry: Double?
            #expect(eventually {
                expiry = operatorPorts.scrape(kind, number)?.value("kvraft_tls_certificate_expiry_timestamp_seconds")
                return expiry.map { abs($0 - expected) < 3_600 } == true
            }, "\(kind) \(number): \(String(describing: expiry))")
        }
        // The expired client certificate was valid until 2020-02-01T00:00:00Z.
        #expect(try TLSContext(files: certs.files("client-expired")).certificateNotAfter == 1_580_515_200)

        // Nodes 1 and 3 make a majority; the client's certificate is good.
        try expectServed(gateway, tls: good, key: "before", cluster: cluster)
        // The Python example speaks TLS with the standard ssl module.
        try expectPythonServed(gateway: "127.0.0.1:\(cluster.gatewayPorts[0])", certs: certs, cluster: cluster)

        // A plaintext client on the TLS port: no answer, closed.
        expectRefused(KVConnection(endpoint: gateway))
        // A certificate from another CA; an expired one from the cluster's CA.
        expectRefused(KVConnection(endpoint: gateway, tls: try TLSContext(files: certs.foreignClient)))
        expectRefused(KVConnection(endpoint: gateway, tls: try TLSContext(files: certs.files("client-expired"))))
        // A client certificate straight at kvd (only gateways and nodes may connect there).
        expectRefused(KVConnection(endpoint: cluster.kvdEndpoints[0], tls: good))

        let gatewayProcess = cluster.gateway(1)
        expectLoggedOnce(gatewayProcess, "the peer does not speak TLS")
        expectLoggedOnce(gatewayProcess, "unable to get local issuer certificate")
        expectLoggedOnce(gatewayProcess, "certificate has expired")
        expectLoggedOnce(cluster.kvd(1), "only gateway or node certificates may reach kvd")
        // raftd 1 refuses raftd 2 both ways: its messages claim node 2 under node 3's name, and
        // dialing node 2 finds node 3's certificate. Repeats (raftd 2 keeps redialing) are
        // folded into one line per 5 s.
        #expect(eventually { cluster.raftd(1).logLines(containing: "messages claim node 2, but its certificate names node-3") >= 1 },
                "\(cluster.raftd(1).logTail())")
        #expect(eventually { cluster.raftd(1).logLines(containing: "hostname mismatch") >= 1 }, "\(cluster.raftd(1).logTail())")

        // Gateway 2 serves the client certificate and refuses the gateway's own, which its CA
        // signed but which does not name `client`; gateway 1 has no such list.
        let strictGateway = cluster.gatewayEndpoints[1]
        try expectServed(strictGateway, tls: good, key: "strict", cluster: cluster)
        let notAClient = try TLSContext(files: certs.files("gateway"))
        expectRefused(KVConnection(endpoint: strictGateway, tls: notAClient))
        expectLoggedOnce(cluster.gateway(2), "only client certificates naming client may connect; this one names gateway")
        try expectServed(gateway, tls: notAClient, key: "lenient", cluster: cluster)

        // Every process still serves.
        try expectServed(gateway, tls: good, key: "after", cluster: cluster)
        for process in cluster.allProcesses { #expect(process.isRunning, "\(process.name) exited") }

        // The operator installs raftd 2's own certificate at the same paths. Without a
        // restart, its new links present node-2, nodes 1 and 3 admit it, and it catches up.
        // (kvds admit gateway certificates only over TLS: the status asks go as the gateway.)
        let asGateway = try TLSContext(files: certs.files("gateway"))
        func commitIndex(_ node: Int) -> UInt64? {
            let connection = KVConnection(endpoint: cluster.kvdEndpoints[node - 1], tls: asGateway)
            defer { connection.close() }
            return (try? connection.call(KvRequest(op: .status), timeoutMs: 1000))?.nodes.first?.commitIndex
        }
        let committed = try #require(commitIndex(1))
        #expect((commitIndex(2) ?? 0) < committed, "raftd 2 kept up while refused")
        try certs.install("node-2", as: "raftd-2")
        #expect(eventually(seconds: 10) { cluster.raftd(2).logLines(containing: "loaded the changed TLS files") == 1 },
                "\(cluster.raftd(2).logTail())")
        #expect(eventually(seconds: 15) { (commitIndex(2) ?? 0) >= committed },
                "raftd 2 did not catch up after its certificate was replaced: \(String(describing: commitIndex(2))) < \(committed)\n\(cluster.logs())")
        try expectServed(gateway, tls: good, key: "rotated", cluster: cluster)

        // `scripts/certs --renew` (same CA, 30 days this time) while every link stays up: each
        // process reloads within its 5 s check, its expiry gauge moves, and clients holding
        // either the old or the renewed certificate are served.
        let renew = try run([LocalCluster.packageRoot.appendingPathComponent("scripts/certs").path,
                             certs.directory.path, "--renew", "--days", "30"])
        try #require(renew.status == 0, "scripts/certs --renew: \(renew.output)")
        let renewedUntil = Date().timeIntervalSince1970 + 30 * 86_400
        for (kind, number) in [(ClusterProcess.Kind.raftd, 1), (.kvd, 3), (.gateway, 1)] {
            var expiry: Double?
            #expect(eventually(seconds: 12) {
                expiry = operatorPorts.scrape(kind, number)?.value("kvraft_tls_certificate_expiry_timestamp_seconds")
                return expiry.map { abs($0 - renewedUntil) < 3_600 } == true
            }, "\(kind) \(number) did not take the renewed certificate: \(String(describing: expiry))")
        }
        try expectServed(gateway, tls: try TLSContext(files: certs.files("client")), key: "renewed", cluster: cluster)
        try expectServed(gateway, tls: good, key: "old client", cluster: cluster)
    }

    /// A server's TLS context (reload logging, expiry gauge, 5 s check) is freed with its last
    /// owner: nothing it keeps points back at it, so its periodic check does not outlive it.
    @Test func servingContextIsReleasedWithItsOwner() throws {
        let certs = try TlsTestCertificates(nodes: 1)
        defer { certs.remove() }
        let loop = EventLoop()
        weak var released: TLSContext?
        do {
            let context = try ServingTLS.context(files: certs.files("node-1"), loop: loop, logger: Logger(label: "test"))
            released = context
            #expect(context.reloadsChangedFiles)
        }
        #expect(released == nil, "the serving context outlived its last owner")
    }

    private func expectServed(_ gateway: Endpoint, tls: TLSContext, key: String, cluster: LocalCluster) throws {
        let clerk = Clerk(endpoints: [gateway], attemptTimeoutMs: 2000, operationTimeoutMs: 15_000)
        clerk.tls = tls
        guard case let .completed(put) = clerk.put(Array(key.utf8), Array("v".utf8)), put.status == .ok else {
            Issue.record("put over TLS failed\n\(cluster.logs())")
            return
        }
        guard case let .completed(get) = clerk.get(Array(key.utf8)) else {
            Issue.record("get over TLS failed\n\(cluster.logs())")
            return
        }
        #expect(get.status == .ok && get.value == Array("v".utf8))
    }

    private func expectPythonServed(gateway: String, certs: TlsTestCertificates, cluster: LocalCluster) throws {
        let root = LocalCluster.packageRoot
        let generated = certs.directory.appendingPathComponent("python")
        try FileManager.default.createDirectory(at: generated, withIntermediateDirectories: true)
        let protoc = try run(["protoc", "--python_out=\(generated.path)", "-I", root.appendingPathComponent("proto").path,
                              root.appendingPathComponent("proto/kv.proto").path])
        try #require(protoc.status == 0, "protoc failed: \(protoc.output)")
        let script = root.appendingPathComponent("examples/python/kvclient.py").path
        let tls = ["--tls-cert", certs.path("client.pem"), "--tls-key", certs.path("client-key.pem"), "--tls-ca", certs.path("ca.pem")]
        let put = try run(["python3", script, "--gateway", gateway] + tls + ["put", "lang", "python"], pythonPath: generated.path)
        #expect(put.status == 0, "python put over TLS failed: \(put.output)\n\(cluster.logs())")
        let get = try run(["python3", script, "--gateway", gateway] + tls + ["get", "lang"], pythonPath: generated.path)
        #expect(get.status == 0 && get.output.contains("python"), "python get over TLS: \(get.output)")
    }

    private func run(_ arguments: [String], pythonPath: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        if let pythonPath { environment["PYTHONPATH"] = pythonPath }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// No answer: the call fails (closed, or refused in the handshake).
    private func expectRefused(_ connection: KVConnection) {
        defer { connection.close() }
        do {
            let response = try connection.call(KvRequest(clientID: 1, seq: 1, op: .get, key: Array("k".utf8)), timeoutMs: 3000)
            Issue.record("a refused client got an answer: \(response)")
        } catch {
            #expect(error != .timedOut, "the refused connection was left open")
        }
    }

    private func expectLoggedOnce(_ process: ClusterProcess, _ text: String) {
        #expect(eventually { process.logLines(containing: text) >= 1 }, "\(process.name) never logged '\(text)'\n\(process.logTail())")
        #expect(process.logLines(containing: text) == 1, "\(process.name) logged '\(text)' more than once\n\(process.logTail())")
    }
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
