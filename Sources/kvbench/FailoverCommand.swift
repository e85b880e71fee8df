import ArgumentParser
import EventLoop
import Foundation

/// kvbench failover: steady load through the gateways while something else (scripts/bench
/// --failover) injects faults; writes a timeline of stretches without completed operations
/// and of errors, to be matched against the fault times.
struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Steady Put/Append/Get load through gateways, recording every stretch without a completed operation (for fault injection).",
        discussion: """
        Each client has its own client_id and seq, one operation outstanding, a third each of \
        puts, appends and gets, and resends with the same seq after --attempt-timeout-ms \
        without an answer or 10 ms after a WRONG_LEADER/TIMEOUT/UNAVAILABLE answer. Clients \
        are spread over --conns connections, spread over the targets; a client whose connection \
        breaks moves to a live connection of another target. Runs until SIGTERM/SIGINT or \
        --max-duration, then writes an `end` line to the timeline and prints a summary. \
        The timeline format is described in FailoverTimeline.swift; times are CLOCK_MONOTONIC ns.
        Example: kvbench failover --target 127.0.0.1:8000,127.0.0.1:8001 --clients 8 --conns 4 --timeline /tmp/t.txt
        """)

    @Option(help: "Gateway address(es): HOST:PORT[,HOST:PORT…].")
    var target: String = "127.0.0.1:8000"

    @Option(help: "Concurrent session clients (each one operation outstanding).")
    var clients: Int = 8

    @Option(help: "Connections, spread over the targets; clients are spread over them.")
    var conns: Int = 4

    @Option(help: "Key size in bytes.")
    var keySize: Int = 16

    @Option(help: "Value size in bytes (puts and appends).")
    var valueSize: Int = 32

    @Option(help: "Number of distinct keys, chosen uniformly.")
    var keys: Int = 4096

    @Option(help: "Resend an attempt (same seq) when it got no answer in this many milliseconds (kvctl uses 2000).")
    var attemptTimeoutMs: Double = 2000

    @Option(help: "Write stretches without a completed operation longer than this many milliseconds.")
    var gapThresholdMs: Double = 2

    @Option(help: "Write operations that took longer than this many milliseconds (first send to answer).")
    var slowThresholdMs: Double = 20

    @Option(help: "File the timeline is written to (truncated).")
    var timeline: String

    @Option(help: "Stop after this many seconds even without a signal.")
    var maxDuration: Double = 900

    @Option(help: "Name of this run in the output.")
    var label: String = ""

    @Option(help: "Random seed (keys, values, client ids, op mix). Default: random.")
    var seed: UInt64?

    @Flag(help: "Print the summary as JSON on stdout (the table then goes to stderr).")
    var json = false

    func validate() throws {
        guard !parsedTargets().isEmpty else { throw ValidationError("--target '\(target)' is not HOST:PORT[,HOST:PORT…]") }
        guard clients >= 1, conns >= 1 else { throw ValidationError("--clients and --conns must be at least 1") }
        guard keySize >= 1, valueSize >= 0, keys >= 1 else { throw ValidationError("--key-size and --keys must be positive, --value-size not negative") }
        guard attemptTimeoutMs > 0, gapThresholdMs >= 0, slowThresholdMs >= 0, maxDuration > 0 else {
            throw ValidationError("--attempt-timeout-ms and --max-duration must be positive, --gap-threshold-ms and --slow-threshold-ms not negative")
        }
    }

    func parsedTargets() -> [BenchTarget] {
        let items = target.split(separator: ",").map { BenchTarget.parse(String($0)) }
        guard !items.contains(where: { $0 == nil }) else { return [] }
        return items.compactMap { $0 }
    }

    func run() throws {
        let targets = parsedTargets()
        let config = FailoverConfig(
            targets: targets, clients: clients, conns: max(conns, targets.count),
            keySize: keySize, valueSize: valueSize, keys: keys,
            attemptTimeoutMs: attemptTimeoutMs, gapThresholdMs: gapThresholdMs, slowThresholdMs: slowThresholdMs,
            timelinePath: timeline, maxDurationSeconds: maxDuration, label: label,
            seed: seed ?? UInt64.random(in: 1...UInt64.max))
        let result: FailoverLoadResult
        do {
            let recorder = try FailoverTimeline(path: timeline, gapThresholdMs: gapThresholdMs, slowThresholdMs: slowThresholdMs)
            result = try FailoverDriver(config: config, loop: EventLoop(), timeline: recorder, log: stderr).run()
        } catch {
            stderr("kvbench failover: \(error)")
            throw ExitCode(1)
        }
        if json {
            stderr(result.table())
            print(result.json())
        } else {
            print(result.table())
        }
    }
}
