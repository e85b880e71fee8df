import EventLoop
import Foundation
import Testing

/// TLS links on one loop (OpenSSL bufferevents), with certificates from `scripts/certs`, and
/// the evhttp server behind `/metrics` and `/health`.
@Suite struct TLSConnectionTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Makes a CA and node-1, node-2 certificates in a temp dir.
    static func makeCertificates() throws -> URL {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvraft-tls-\(UUID().uuidString.prefix(8))")
        let process = Process()
        process.executableURL = packageRoot.appendingPathComponent("scripts/certs")
        process.arguments = [directory.path, "--nodes", "2"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "scripts/certs failed")
        return directory
    }

    /// Puts `name`'s certificate and key (from `directory`) at `files`' paths, each by a rename,
    /// as deployment tools do: never a half-written file in place.
    static func install(_ name: String, from directory: URL, at files: TLSFiles) throws {
        for (source, target) in [("\(name).pem", files.certificate), ("\(name)-key.pem", files.key)] {
            let staged = target + ".new"
            try? FileManager.default.removeItem(atPath: staged)
            try FileManager.default.copyItem(atPath: directory.appendingPathComponent(source).path, toPath: staged)
            _ = rename(staged, target)
        }
    }

    static func files(_ directory: URL, _ name: String) -> TLSFiles {
        TLSFiles(certificate: directory.appendingPathComponent("\(name).pem").path,
                 key: directory.appendingPathComponent("\(name)-key.pem").path,
                 ca: directory.appendingPathComponent("ca.pem").path)
    }

    /// A megabyte each way through a mutually authenticated link; both ends see the other's names.
    @Test func echoesThroughMutualTLS() throws {
        let certs = try Self.makeCertificates()
        defer { try? FileManager.default.removeItem(at: certs) }
        let loop = EventLoop()
        let serverContext = try TLSContext(files: Self.files(certs, "node-1"))
        var accepted: [Connection] = []
        var serverSawNames: [String] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0),
                                    tls: TLSAccept(context: serverContext) { $0.nodeIDs.isEmpty ? "nodes only" : nil }) { connection in
            serverSawNames = connection.peerCertificate?.names ?? []
            accepted.append(connection)
            connection.onRead = { conn in
                var bytes: [UInt8] = []
                conn.readAvailable(appendingTo: &bytes)
                conn.write(bytes)
            }
        }
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var echoed: [UInt8] = []
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port),
                                            tls: TLSDial(context: try TLSContext(files: Self.files(certs, "node-2")), expectedName: "node-1"))
        client.onConnected = { $0.write(payload) }
        client.onRead = { conn in
            conn.readAvailable(appendingTo: &echoed)
            if echoed.count >= payload.count { loop.stop() }
        }
        client.onClose = { _, reason in
            Issue.record("client closed: \(reason)")
            loop.stop()
        }
        runLoop(loop, seconds: 10, keeping: listener, client)
        #expect(echoed == payload)
        #expect(client.isTLS && client.peerCertificate?.names("node-1") == true)
        #expect(serverSawNames.contains("node-2"))
        withExtendedLifetime(accepted) {}
    }

    /// A short request sent the moment the client's handshake is done travels with its last
    /// handshake message; the server reads both at once, before its owner listens. Each of 20
    /// links must still be answered (a lost first request used to wait forever).
    @Test func firstRequestRidingOnTheHandshakeIsAnswered() throws {
        let link = try TestTLS()
        defer { link.remove() }
        let loop = EventLoop()
        var accepted: [Connection] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0), tls: link.accept) { connection in
            accepted.append(connection)
            connection.onRead = { conn in
                var bytes: [UInt8] = []
                conn.readAvailable(appendingTo: &bytes)
                conn.write(bytes)
            }
        }
        var answered = 0
        var clients: [Connection] = []
        for _ in 0..<20 {
            let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port), tls: link.dial)
            client.onConnected = { $0.write(Array("ping".utf8)) }
            client.onRead = { conn in
                var bytes: [UInt8] = []
                conn.readAvailable(appendingTo: &bytes)
                answered += 1
                if answered == 20 { loop.stop() }
            }
            clients.append(client)
        }
        runLoop(loop, seconds: 10, keeping: listener)
        #expect(answered == 20)
        withExtendedLifetime((accepted, clients)) {}
    }

    /// A server queues 4 MiB and closes after the flush: over TLS the close waits until the
    /// socket took every record, and the client reads all of it, then the end of the stream.
    @Test func closeAfterFlushSendsEverythingFirst() throws {
        let link = try TestTLS()
        defer { link.remove() }
        let loop = EventLoop()
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var serverClosed: Connection.CloseReason?
        var accepted: [Connection] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0), tls: link.accept) { connection in
            accepted.append(connection)
            connection.onClose = { _, reason in serverClosed = reason }
            connection.write(payload)
            connection.closeAfterFlush()
        }
        var received: [UInt8] = []
        var clientClosed: Connection.CloseReason?
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port), tls: link.dial)
        client.onRead = { $0.readAvailable(appendingTo: &received) }
        client.onClose = { _, reason in
            clientClosed = reason
            loop.stop()
        }
        runLoop(loop, seconds: 10, keeping: listener, client)
        #expect(received.count == payload.count && received == payload)
        #expect(clientClosed == .eof)
        #expect(serverClosed == .closedLocally)
        withExtendedLifetime(accepted) {}
    }

    /// A dialer expecting node-2 meets node-1's certificate: the handshake fails with the
    /// reason, and the listener goes on admitting the right peers.
    @Test func wrongPeerNameIsRefusedAndListenerKeepsServing() throws {
        let certs = try Self.makeCertificates()
        defer { try? FileManager.default.removeItem(at: certs) }
        let loop = EventLoop()
        var accepted: [Connection] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0),
                                    tls: TLSAccept(context: try TLSContext(files: Self.files(certs, "node-1")))) { accepted.append($0) }
        let clientContext = try TLSContext(files: Self.files(certs, "node-2"))
        var refusal: Connection.CloseReason?
        let wrong = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port),
                                           tls: TLSDial(context: clientContext, expectedName: "node-2"))
        wrong.onConnected = { _ in Issue.record("connected to a peer with the wrong name") }
        wrong.onClose = { _, reason in
            refusal = reason
            loop.stop()
        }
        runLoop(loop, seconds: 10, keeping: listener, wrong)
        guard case let .connectFailed(why)? = refusal else {
            Issue.record("expected a failed handshake, got \(String(describing: refusal))")
            return
        }
        #expect(why.contains("hostname mismatch"), "\(why)")
        #expect(wrong.tlsFailure != nil)

        let right = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port),
                                           tls: TLSDial(context: clientContext, expectedName: "node-1"))
        right.onConnected = { _ in loop.stop() }
        runLoop(loop, seconds: 10, keeping: listener, right)
        #expect(right.isConnected)
        #expect(eventually(loop) { accepted.count == 1 })
        #expect(listener.refusedHandshakes == 1)
    }

    /// Certificates rotated in place: links made after the files changed present the new
    /// certificate; files that do not load leave the last good one serving, and say why once.
    @Test func rotatedCertificateFilesServeNewLinks() throws {
        let certs = try Self.makeCertificates()
        defer { try? FileManager.default.removeItem(at: certs) }
        let manager = FileManager.default
        let serving = TLSFiles(certificate: certs.appendingPathComponent("serving.pem").path,
                               key: certs.appendingPathComponent("serving-key.pem").path,
                               ca: certs.appendingPathComponent("ca.pem").path)
        func install(_ name: String) throws { try Self.install(name, from: certs, at: serving) }
        try install("node-1")
        let loop = EventLoop()
        let serverContext = try TLSContext(files: serving)
        // scripts/certs makes certificates valid for 825 days.
        let validFor = serverContext.certificateNotAfter.map { Double($0) - Date().timeIntervalSince1970 }
        #expect(validFor.map { abs($0 - 825 * 86_400) < 3_600 } == true, "\(String(describing: validFor))")
        serverContext.reloadsChangedFiles = true
        serverContext.reloadCheckIntervalNanos = 0
        var reloads: [Result<String, EventLoopError>] = []
        serverContext.onReload = { reloads.append($0) }
        var accepted: [Connection] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0),
                                    tls: TLSAccept(context: serverContext)) { accepted.append($0) }
        let clientContext = try TLSContext(files: Self.files(certs, "node-2"))
        func namesSeenByANewClient() -> [String] {
            guard let client = try? Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port),
                                                       tls: TLSDial(context: clientContext, expectedName: nil)) else { return [] }
            var names: [String] = []
            client.onConnected = { conn in
                names = conn.peerCertificate?.names ?? []
                loop.stop()
            }
            client.onClose = { _, _ in loop.stop() }
            runLoop(loop, seconds: 10, keeping: listener, client)
            return names
        }
        let before = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port),
                                            tls: TLSDial(context: clientContext, expectedName: "node-1"))
        before.onConnected = { _ in loop.stop() }
        runLoop(loop, seconds: 10, keeping: listener, before)
        #expect(before.isConnected && before.peerCertificate?.names("node-1") == true)
        #expect(reloads.isEmpty)

        try install("node-2")
        let afterRotation = namesSeenByANewClient()
        #expect(afterRotation.contains("node-2") && !afterRotation.contains("node-1"), "\(afterRotation)")
        #expect(reloads.count == 1 && (try? reloads.last?.get()) != nil, "\(reloads)")

        // A key that does not belong to the certificate: the node-2 identity goes on serving.
        _ = unlink(serving.key)
        try manager.copyItem(atPath: certs.appendingPathComponent("node-1-key.pem").path, toPath: serving.key)
        let afterBadFiles = namesSeenByANewClient()
        #expect(afterBadFiles.contains("node-2"), "\(afterBadFiles)")
        guard reloads.count == 2, case let .failure(error) = reloads[1] else {
            Issue.record("expected one failed reload, got \(reloads)")
            return
        }
        #expect(error.description.contains("serving-key.pem") && error.description.contains("mismatch"), "\(error)")
        // Told once: the same bad files are not tried again.
        _ = namesSeenByANewClient()
        #expect(reloads.count == 2)
        // The link made before the rotations still carries bytes.
        var echoedBefore: [UInt8] = []
        if let serverSide = accepted.first {
            serverSide.onRead = { conn in
                var bytes: [UInt8] = []
                conn.readAvailable(appendingTo: &bytes)
                conn.write(bytes)
            }
        }
        before.onRead = { conn in
            conn.readAvailable(appendingTo: &echoedBefore)
            if echoedBefore.count >= 4 { loop.stop() }
        }
        before.write(Array("ping".utf8))
        runLoop(loop, seconds: 10, keeping: listener, before)
        #expect(echoedBefore == Array("ping".utf8))
    }

    /// The periodic check alone (no link starts) takes rotated files up: what ends its wait is
    /// its own timer firing. The timer goes with the context.
    @Test func periodicCheckReloadsWhileNoLinkStarts() throws {
        let certs = try Self.makeCertificates()
        defer { try? FileManager.default.removeItem(at: certs) }
        let serving = Self.files(certs, "node-1")
        let loop = EventLoop()
        var reloads = 0
        weak var released: TLSContext?
        do {
            let context = try TLSContext(files: serving)
            released = context
            context.reloadsChangedFiles = true
            context.reloadCheckIntervalNanos = 0
            context.onReload = { _ in
                reloads += 1
                loop.stop()
            }
            context.checkFilesPeriodically(every: .milliseconds(20), on: loop)
            try Self.install("node-2", from: certs, at: serving)
            runLoop(loop, seconds: 5, keeping: context)
            #expect(reloads == 1)
        }
        #expect(released == nil, "the context (and its timer) outlived its last owner")
    }

    /// GET on the evhttp server: the handler's status, type and body; unknown methods refused.
    @Test func httpServerAnswersGet() throws {
        let loop = EventLoop()
        let server = try HTTPServer(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { path in
            path == "/health" ? .text(503, "{\"health\":\"false\"}") : .text(200, "path \(path)")
        }
        func get(_ path: String) -> String {
            var answer: [UInt8] = []
            guard let client = try? Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: server.port)) else { return "" }
            client.onConnected = { $0.write(Array("GET \(path) HTTP/1.0\r\n\r\n".utf8)) }
            client.onRead = { $0.readAvailable(appendingTo: &answer) }
            client.onClose = { _, _ in loop.stop() }
            runLoop(loop, seconds: 5, keeping: server, client)
            return String(decoding: answer, as: UTF8.self)
        }
        let health = get("/health")
        #expect(health.hasPrefix("HTTP/1.0 503") && health.hasSuffix("{\"health\":\"false\"}"), "\(health)")
        let other = get("/metrics")
        #expect(other.hasPrefix("HTTP/1.0 200") && other.hasSuffix("path /metrics"), "\(other)")
    }

    private func eventually(_ loop: EventLoop, _ condition: () -> Bool) -> Bool {
        for _ in 0..<100 where !condition() { loop.runOnce() ; usleep(10_000) }
        return condition()
    }
}

/// Certificates for one TLS link in a test (node-1 serves, node-2 dials it), removed by `remove()`.
struct TestTLS {
    let directory: URL
    let accept: TLSAccept
    let dial: TLSDial

    init() throws {
        directory = try TLSConnectionTests.makeCertificates()
        accept = TLSAccept(context: try TLSContext(files: TLSConnectionTests.files(directory, "node-1")))
        dial = TLSDial(context: try TLSContext(files: TLSConnectionTests.files(directory, "node-2")), expectedName: "node-1")
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
