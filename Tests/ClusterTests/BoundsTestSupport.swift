import ClusterTestSupport
import KVClient
import Foundation
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// One kvraft binary started alone with the flags a test wants, optionally under a shell
/// `ulimit -n`, logging to a file; killed (by its pid) when the test is done.
final class LoneProcess {
    let directory: URL
    let port: Int
    private let process = Process()
    private let logURL: URL

    /// A second free port, for `--metrics-listen 127.0.0.1:MPORT`.
    let metricsPort: Int

    /// `arguments` get `PORT` replaced by a free port (`port`), `MPORT` by another
    /// (`metricsPort`) and `DIR` by a fresh temp dir.
    init(_ binary: String, _ arguments: [String], descriptorLimit: Int? = nil) throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("bounds-\(UUID().uuidString.prefix(8))")
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ports = try PortReservation(count: 2)
        let port = ports.ports[0]
        self.port = port
        let metricsPort = ports.ports[1]
        self.metricsPort = metricsPort
        ports.release()
        let executable = try LocalCluster.binaryDirectory().appendingPathComponent(binary).path
        let resolved = arguments.map {
            $0.replacingOccurrences(of: "MPORT", with: "\(metricsPort)")
                .replacingOccurrences(of: "PORT", with: "\(port)").replacingOccurrences(of: "DIR", with: directory.path)
        }
        if let descriptorLimit {
            // exec keeps the pid: the shell's pid is the binary's.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(descriptorLimit) && exec \"$0\" \"$@\"", executable] + resolved
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = resolved
        }
        logURL = directory.appendingPathComponent("\(binary).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // Its own log line (written once it listens), then one connect: something else might
        // hold the port. Not a connect per poll: on a slow machine those pile up, unaccepted, in
        // the listen backlog the test then needs for its own connections.
        guard waitUntil(timeoutMs: 10_000, { (try? String(contentsOf: self.logURL, encoding: .utf8))?.contains(":\(port)") == true }),
              RawClient.canConnect(port: port) else {
            throw BoundsTestError(description: "\(binary) did not start listening on \(port): \(log)")
        }
    }

    deinit { stop() }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Resident memory in KiB, from /proc/PID/status.
    var residentKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    /// User plus system CPU time in clock ticks, from /proc/PID/stat (fields 14 and 15).
    var cpuTicks: Int? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name, which may hold spaces: state is field 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// One sample from the process's `/metrics` (it must have been started with
    /// `--metrics-listen 127.0.0.1:MPORT`): the process's own count, exact at the moment of the
    /// scrape, where the kernel's socket tables read from /proc can list a socket twice or not
    /// at all while other sockets come and go.
    func metric(_ name: String) -> Double? {
        let result = HealthProbe.get(.tcp(host: "127.0.0.1", port: metricsPort), path: "/metrics", timeoutMs: 2000)
        guard result.status == 200 else { return nil }
        return (try? MetricsText(result.detail))?.value(name)
    }
}

struct BoundsTestError: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` every 10 ms until it holds or `timeoutMs` passes.
func waitUntil(timeoutMs: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeoutMs / 1000)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// A plain blocking TCP socket to 127.0.0.1: it sends exactly what the test says, reads only
/// when told, and so can play a client that stops halfway through a frame or never reads.
final class RawClient {
    private(set) var fd: Int32
    private var received = FrameDecoder()

    /// Bytes `push` has not yet got the socket to take.
    private var outbox: [UInt8] = []

    /// `receiveBuffer`: a small kernel receive buffer (no autotuning to many MiB), so that a
    /// client that does not read backs the server's output up quickly.
    init(port: Int, receiveBuffer: Int? = nil) throws {
        // CLOEXEC: processes other tests start meanwhile must not inherit (and hold open) these.
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BoundsTestError(description: "socket: \(String(cString: strerror(errno)))") }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        guard RawClient.connect(fd, port: port) else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw BoundsTestError(description: "connect to \(port): \(why)")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(fd) }
        return connect(fd, port: port)
    }

    private static func connect(_ fd: Int32, port: Int) -> Bool {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Sends all of `bytes` (blocking); false if the peer is gone.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// Queues `bytes` (unless plenty already wait) and sends what the socket takes without
    /// blocking; false once the peer is gone.
    func push(_ bytes: [UInt8]) -> Bool {
        if outbox.count < 1 << 20 { outbox += bytes }
        let n = outbox.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
        outbox.removeFirst(n)
        return true
    }

    func send(_ request: KvRequest) -> Bool {
        var frame: [UInt8] = []
        request.appendFrame(to: &frame)
        return send(frame)
    }

    /// The next response, or nil if none came within `timeoutMs` or the peer closed.
    func receive(timeoutMs: Double) -> KvResponse? {
        let deadline = Date().addingTimeInterval(timeoutMs / 1000)
        while true {
            if let frame = try? received.nextFrame() { return try? KvResponse(serialized: frame) }
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let chunk = read(waitingMs: left * 1000), !chunk.isEmpty else { return nil }
            received.append(chunk)
        }
    }

    /// Reads and drops everything until the peer closes (true) or nothing arrives for `quietMs` (false).
    func waitForPeerClose(quietMs: Double) -> Bool {
        while true {
            guard let chunk = read(waitingMs: quietMs) else { return false }
            if chunk.isEmpty { return true }
        }
    }

    /// nil: nothing within the wait; empty: closed (EOF or reset).
    private func read(waitingMs: Double) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(max(1, waitingMs)))
        guard ready > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return [] }
        return Array(buffer.prefix(n))
    }
}
