import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process a test started, with its output in a file (a pipe could fill up and stall it) and
/// every wait bounded. Only this PID is ever signalled.
final class ChildProcess {
    let process = Process()
    let outputURL: URL
    private let output: FileHandle

    init(_ executable: String, _ arguments: [String], currentDirectory: URL? = nil) throws {
        outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        output = try FileHandle(forWritingTo: outputURL)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? output.close()
        try? FileManager.default.removeItem(at: outputURL)
    }

    var pid: Int32 { process.processIdentifier }
    var text: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for the process to exit; returns its status, or nil if it still runs.
    func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits up to `seconds` until the output contains `needle` (false if the process exits first).
    func waitForOutput(_ needle: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if text.contains(needle) { return true }
            if !process.isRunning { return text.contains(needle) }
            usleep(100_000)
        }
        return false
    }

    func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }
}

/// Runs a command to completion (at most `seconds`, then SIGKILL) and returns its status and output.
func runCommand(_ executable: String, _ arguments: [String], seconds: Double = 60,
                currentDirectory: URL? = nil) throws -> (status: Int32, output: String) {
    let child = try ChildProcess(executable, arguments, currentDirectory: currentDirectory)
    guard let status = child.wait(seconds: seconds) else {
        child.signal(SIGKILL)
        _ = child.wait(seconds: 5)
        return (-1, child.text + "\n[killed after \(seconds) s: \(executable) \(arguments.joined(separator: " "))]")
    }
    return (status, child.text)
}

/// Paths of the repository and of the binaries the tests use.
enum Repo {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let binaries = ["raftd", "kvd", "kvgateway", "kvctl"]

    /// The directory holding the test bundle, i.e. this configuration's built products (debug).
    static var productsDir: URL {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = me.deletingLastPathComponent()
        // On Linux the runner is `.build/<triple>/debug/kvraftPackageTests.xctest`.
        if !hasAllBinaries(dir) { dir = root.appendingPathComponent(".build/debug") }
        return dir
    }

    static func hasAllBinaries(_ dir: URL) -> Bool {
        binaries.allSatisfy { FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent($0).path) }
    }

    /// Release binaries if `scripts/setup` built them, else this build's (debug) ones.
    static var clusterBinDir: URL {
        let release = root.appendingPathComponent(".build/release")
        return hasAllBinaries(release) ? release : productsDir
    }
}

/// Whether every port binds on 127.0.0.1 right now (with SO_REUSEADDR, as the binaries bind).
func portsAreFree(_ ports: [Int]) -> Bool {
    ports.allSatisfy { port in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
