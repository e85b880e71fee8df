import ArgumentParser
import EventLoop
import Foundation
import ServiceSupport

extension WorkloadOp: ExpressibleByArgument {}

/// kvbench: `kv` (the default: `kvbench --target …` means `kvbench kv --target …`) drives
/// kvraft's client protocol; `raft` drives raftd's apply socket directly; `failover` is steady
/// load recording stretches without a completed operation (scripts/bench --failover).
struct Kvbench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvbench",
        abstract: "Load generator for kvraft.",
        subcommands: [Kv.self, Raft.self, Failover.self],
        defaultSubcommand: Kv.self)
}

/// kvbench kv: a closed-loop load generator for kvraft's client protocol.
struct Kv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Load generator for kvraft: many session clients, one operation outstanding each, on one event loop (the default subcommand).",
        discussion: """
        Each client has its own random client_id and seq from 1 and retries WRONG_LEADER, TIMEOUT and \
        UNAVAILABLE with the same seq (exactly-once on); SESSION_EXPIRED (applied earlier, reply lost) ends the operation. \
        Latency is measured from an operation's first send to its definite answer, retries included.
        Example: kvbench --target 127.0.0.1:8000 --clients 64 --conns 8 --op put --duration 20 --pids-from-names
        """)

    @Option(help: "Gateway or kvd address(es): HOST:PORT[,HOST:PORT…]; ID=HOST:PORT for kvds lets WRONG_LEADER hints be followed.")
    var target: String = "127.0.0.1:8000"

    @Option(help: "Concurrent session clients (each at most one operation outstanding).")
    var clients: Int = 1

    @Option(help: "Connections, spread over the targets; clients are spread over them. Default: min(clients, 8).")
    var conns: Int?

    @Option(help: "Operation: put, get, append, or mixed (gets and puts, see --read-ratio).")
    var op: WorkloadOp = .put

    @Option(help: "Share of gets in a mixed workload (0…1); implies --op mixed when given.")
    var readRatio: Double?

    @Option(help: "Key size in bytes.")
    var keySize: Int = 16

    @Option(help: "Value size in bytes (put, append).")
    var valueSize: Int = 256

    @Option(help: "Number of distinct keys, chosen uniformly.")
    var keys: Int = 10_000

    @Flag(help: "Put every key once before the run (for get workloads).")
    var preload = false

    @Flag(help: "Find the cluster's raftd, kvd and kvgateway processes behind --target (by name and flags).")
    var pidsFromNames = false

    @Option(help: "Resend an attempt (same seq) when it got no answer in this many milliseconds.")
    var attemptTimeoutMs: Double = 6000

    @Option(help: "Random seed (keys, values, client ids). Default: random.")
    var seed: UInt64?

    @OptionGroup var measurement: MeasurementOptions

    @OptionGroup(title: "TLS (for a cluster started with --tls-*)")
    var tls: TLSOptions

    func validate() throws {
        guard parsedTargets() != nil else { throw ValidationError("--target '\(target)' is not HOST:PORT[,HOST:PORT…]") }
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1") }
        if let conns, conns < 1 { throw ValidationError("--conns must be at least 1") }
        guard keySize >= 1, valueSize >= 0, keys >= 1 else { throw ValidationError("--key-size and --keys must be positive, --value-size not negative") }
        if let readRatio, !(0...1).contains(readRatio) { throw ValidationError("--read-ratio must be within 0…1") }
    }

    func parsedTargets() -> [BenchTarget]? {
        let items = target.split(separator: ",").map { BenchTarget.parse(String($0)) }
        guard !items.isEmpty, !items.contains(where: { $0 == nil }) else { return nil }
        return items.compactMap { $0 }
    }

    func run() throws {
        let targets = parsedTargets()!
        var config = BenchConfig(
            // At least one connection per target, so a client can follow a leader hint anywhere.
            targets: targets, clients: clients, conns: max(conns ?? min(clients, 8), targets.count),
            op: readRatio != nil ? .mixed : op, readRatio: readRatio ?? 0.5,
            keySize: keySize, valueSize: valueSize, keys: keys,
            durationSeconds: measurement.durationSeconds, total: measurement.total, warmupSeconds: measurement.warmup, preload: preload,
            attemptTimeoutMs: attemptTimeoutMs, label: measurement.label, progress: !measurement.quiet,
            seed: seed ?? UInt64.random(in: 1...UInt64.max))
        config.tls = tls.files
        var processIDs = measurement.processIDs
        if pidsFromNames {
            for pid in ClusterProcessFinder.find(targets: targets) where !processIDs.contains(pid) { processIDs.append(pid) }
            if processIDs.isEmpty { stderr("kvbench: --pids-from-names found no raftd, kvd or kvgateway process") }
        }
        let loop = EventLoop()
        let driver = BenchDriver(config: config, loop: loop, accounting: ProcessAccounting(pids: processIDs), log: stderr)
        let result: BenchResult
        do {
            result = try driver.run()
        } catch {
            stderr("kvbench: \(error)")
            throw ExitCode(1)
        }
        measurement.emit(result)
    }
}

func stderr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

Kvbench.main()
