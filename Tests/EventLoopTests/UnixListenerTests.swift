import EventLoop
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct UnixListenerTests {
    /// Leaves a socket file behind the way a killed process does: bound, never unlinked.
    private func makeStaleSocket(at path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(status == 0)
    }

    /// Accepts one connection on `path`, exchanges one byte each way, returns whether it worked.
    private func exchangeOneByte(loop: EventLoop, path: String, listener: Listener) throws -> Bool {
        var echoed = false
        let client = try Connection.connect(loop: loop, to: .unix(path: path))
        client.onConnected = { $0.write([42]) }
        client.onRead = { connection in
            var bytes: [UInt8] = []
            connection.readAvailable(appendingTo: &bytes)
            echoed = bytes == [43]
            loop.stop()
        }
        runLoop(loop, keeping: client, listener)
        return echoed
    }

    private func makeListener(loop: EventLoop, path: String) throws -> Listener {
        var accepted: [Connection] = []
        return try Listener(loop: loop, endpoint: .unix(path: path)) { connection in
            accepted.append(connection)
            connection.onRead = { connection in
                var bytes: [UInt8] = []
                connection.readAvailable(appendingTo: &bytes)
                connection.write(bytes.map { $0 + 1 })
            }
        }
    }

    @Test func socketFileIsCreatedOwnerOnlyAndRemovedOnDeinit() throws {
        let loop = EventLoop()
        let path = temporarySocketPath()
        var listener: Listener? = try makeListener(loop: loop, path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.type] as? FileAttributeType == .typeSocket)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try exchangeOneByte(loop: loop, path: path, listener: listener!))
        listener = nil
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func staleSocketFileIsReplaced() throws {
        let loop = EventLoop()
        let path = temporarySocketPath()
        try makeStaleSocket(at: path)
        // Nobody listens there: a connect is refused.
        var refused: Connection.CloseReason?
        do {
            let probe = try Connection.connect(loop: loop, to: .unix(path: path))
            probe.onClose = { _, reason in
                refused = reason
                loop.stop()
            }
            runLoop(loop, keeping: probe)
        } catch {
            refused = .connectFailed("\(error)")
        }
        if case .connectFailed = refused {} else { Issue.record("connect to a stale socket: \(String(describing: refused))") }

        let listener = try makeListener(loop: loop, path: path)
        #expect(try exchangeOneByte(loop: loop, path: path, listener: listener))
    }

    @Test func nonSocketFileIsRefusedAndKept() throws {
        let loop = EventLoop()
        let path = temporarySocketPath()
        try Data("precious".utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        #expect(throws: EventLoopError.self) {
            _ = try Listener(loop: loop, endpoint: .unix(path: path)) { _ in }
        }
        #expect(FileManager.default.contents(atPath: path) == Data("precious".utf8))
    }

    @Test func connectToMissingPathThrowsAtOnce() throws {
        let loop = EventLoop()
        let path = temporarySocketPath()
        #expect(throws: EventLoopError.self) {
            _ = try Connection.connect(loop: loop, to: .unix(path: path))
        }
    }
}
