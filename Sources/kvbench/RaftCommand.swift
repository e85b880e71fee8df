import ArgumentParser
import EventLoop
import Foundation

/// kvbench raft: proposes entries straight into raftd's apply socket (no kvd, no gateway)
/// and measures how fast they commit.
struct Raft: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft",
        abstract: "Drive raftd's apply socket directly: proposals/s, commit latency and fsyncs of a raftd-only cluster.",
        discussion: """
        Connects to every raftd's apply socket (a raftd serves one apply client per socket, so \
        no kvd may be attached), finds the leader and keeps --inflight proposals outstanding on \
        the leader's socket, each one entry of --size bytes. Latency runs from sending a \
        proposal to the moment the leader's committed stream delivers the entry at the index \
        raftd assigned it. Every raftd's status (fsync count, last index) is queried before \
        and after the measured window. A leader change is counted and the run continues on \
        the new leader (the old leader's outstanding proposals are dropped from the \
        measurement); --abort-on-leader-change stops the run instead.
        Example: kvbench raft --sockets 1=/tmp/r1.sock,2=/tmp/r2.sock,3=/tmp/r3.sock --inflight 64 --duration 10
        """)

    @Option(help: "Apply sockets of the raftds: ID=PATH,ID=PATH,…")
    var sockets: String

    @Option(help: "Proposals kept outstanding on the leader.")
    var inflight: Int = 1

    @Option(help: "Bytes of data in each proposed entry.")
    var size: Int = 256

    @Option(help: "Give up when nothing commits for this many seconds (or no leader appears at the start).")
    var stallTimeout: Double = 15

    @Flag(help: "Stop with an error when the leader changes instead of continuing on the new leader.")
    var abortOnLeaderChange = false

    @OptionGroup var measurement: MeasurementOptions

    func validate() throws {
        guard parsedSockets() != nil else { throw ValidationError("--sockets '\(sockets)' is not ID=PATH,ID=PATH,…") }
        guard inflight >= 1 else { throw ValidationError("--inflight must be at least 1") }
        guard size >= 0 else { throw ValidationError("--size must not be negative") }
        guard stallTimeout > 0 else { throw ValidationError("--stall-timeout must be positive") }
    }

    func parsedSockets() -> [(id: UInt64, path: String)]? {
        var result: [(id: UInt64, path: String)] = []
        for item in sockets.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let id = UInt64(parts[0]), id > 0, !parts[1].isEmpty,
                  !result.contains(where: { $0.id == id }) else { return nil }
            result.append((id: id, path: parts[1]))
        }
        return result.isEmpty ? nil : result
    }

    func run() throws {
        let config = RaftBenchConfig(
            nodes: parsedSockets()!, inflight: inflight, entrySize: size,
            durationSeconds: measurement.durationSeconds, total: measurement.total, warmupSeconds: measurement.warmup,
            stallTimeoutSeconds: stallTimeout, abortOnLeaderChange: abortOnLeaderChange,
            label: measurement.label, progress: !measurement.quiet)
        let loop = EventLoop()
        let driver = RaftBenchDriver(config: config, loop: loop,
                                     accounting: ProcessAccounting(pids: measurement.processIDs), log: stderr)
        let result: RaftBenchResult
        do {
            result = try driver.run()
        } catch {
            stderr("kvbench raft: \(error)")
            throw ExitCode(1)
        }
        measurement.emit(result)
    }
}
