import Foundation

/// One process of a test cluster: how to start it, and the running instance if any.
public final class ClusterProcess {
    public enum Kind: String, Sendable {
        case raftd, kvd, gateway
    }

    public let kind: Kind
    /// Node id for raftd/kvd, gateway number for gateways.
    public let number: Int
    let executable: URL
    let arguments: [String]
    public let logURL: URL
    private var process: Process?

    init(kind: Kind, number: Int, executable: URL, arguments: [String], logURL: URL) {
        self.kind = kind
        self.number = number
        self.executable = executable
        self.arguments = arguments
        self.logURL = logURL
    }

    public var name: String { "\(kind.rawValue)-\(number)" }
    public var pid: Int32? { process.map { $0.isRunning ? $0.processIdentifier : nil } ?? nil }
    public var isRunning: Bool { process?.isRunning ?? false }

    public func start() throws {
        guard !isRunning else { return }
        if !FileManager.default.fileExists(atPath: logURL.path) {
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        }
        let log = try FileHandle(forWritingTo: logURL)
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
    }

    /// Sends `signal`; for SIGKILL/SIGTERM waits until the process is gone.
    func signal(_ signal: Int32) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, signal)
        if signal == SIGKILL || signal == SIGTERM {
            let deadline = Date().addingTimeInterval(signal == SIGTERM ? 5 : 2)
            while process.isRunning && Date() < deadline { usleep(2000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    /// Exit status once it ended.
    public var terminationStatus: Int32? {
        guard let process, !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// Whether anything this process (in any of its runs) logged contains `text`.
    public func logContains(_ text: String) -> Bool {
        guard let log = try? String(contentsOf: logURL, encoding: .utf8) else { return false }
        return log.contains(text)
    }

    /// How many lines this process logged that contain `text`.
    public func logLines(containing text: String) -> Int {
        guard let log = try? String(contentsOf: logURL, encoding: .utf8) else { return 0 }
        return log.split(separator: "\n").filter { $0.contains(text) }.count
    }

    public func logTail(lines: Int = 30) -> String {
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { return "" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
