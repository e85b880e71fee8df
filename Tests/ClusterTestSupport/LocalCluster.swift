import EventLoop
import Foundation
import KVClient
import Wire
import Synchronization

/// Shape and timing of a test cluster.
public struct ClusterOptions: Sendable {
    public var nodes = 3
    /// Nodes beyond `nodes` (ids nodes+1…) whose raftd starts with `--join` (no configuration)
    /// and waits to be added with `kvctl member add`; not started by `start()`. Gateways are
    /// not told about them: they learn their kvd addresses from the configuration.
    public var spareNodes = 0
    public var gateways = 1
    public var heartbeatMs = 30.0
    public var electionMs = 200.0
    /// kvd: how long a request may wait for its entry to apply.
    public var requestTimeoutMs = 1000.0
    /// Gateway: how long it keeps retrying one request.
    public var gatewayDeadlineMs = 2000.0
    public var sessionTimeoutS = 3600
    /// raftd compacts after this many log bytes: small, so every scenario takes snapshots,
    /// and nodes that fall behind (killed, partitioned) catch up by installing one.
    public var snapshotLogBytes = 64 << 10
    public var snapshotCatchUpBytes = 8 << 10
    public var logLevel = "info"
    /// raftd's `--read-mode`: index, lease or log.
    public var readMode = "index"

    /// KVRAFT_LOG_LEVEL overrides whatever level a test chose (e.g. `info` to see snapshots sent).
    var effectiveLogLevel: String { ProcessInfo.processInfo.environment["KVRAFT_LOG_LEVEL"] ?? logLevel }
    /// More flags for one process (kind, node id or gateway number), e.g. TLS or metrics.
    public var extraArguments: (@Sendable (ClusterProcess.Kind, Int) -> [String])?

    public init(nodes: Int = 3, gateways: Int = 1) {
        self.nodes = nodes
        self.gateways = gateways
    }
}

/// Real kvraft processes on 127.0.0.1 for tests: N nodes (raftd + kvd) and G gateways,
/// with a fault proxy on every link between processes — each raftd→raftd direction and
/// each gateway→kvd link — so tests can partition, delay and drop traffic, and kill -9,
/// restart, SIGSTOP or SIGCONT any process. Everything lives in a temp dir removed by
/// `shutdown()` (kept, with its logs, when `keepFiles` is set).
public final class LocalCluster {
    public let options: ClusterOptions
    public let directory: URL
    public private(set) var raftds: [ClusterProcess] = []
    public private(set) var kvds: [ClusterProcess] = []
    public private(set) var gateways: [ClusterProcess] = []
    /// peerProxies[i][j]: the link raftd i dials to reach raftd j (1-based ids).
    private var peerProxies: [Int: [Int: FaultProxy]] = [:]
    /// gatewayProxies[g][j]: gateway g's link to kvd j.
    private var gatewayProxies: [Int: [Int: FaultProxy]] = [:]
    public private(set) var gatewayPorts: [Int] = []
    public private(set) var kvdPorts: [Int: Int] = [:]
    /// Each raftd's own peer listening port (not behind a proxy).
    public private(set) var raftdPorts: [Int: Int] = [:]
    /// KVRAFT_KEEP_FILES=1 keeps every cluster's directory and logs, for a look after a run.
    public var keepFiles = ProcessInfo.processInfo.environment["KVRAFT_KEEP_FILES"] != nil

    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public init(_ options: ClusterOptions = ClusterOptions()) throws {
        self.options = options
        let binaries = try LocalCluster.binaryDirectory()
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvraft-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let seeds = options.nodes
        let n = options.nodes + options.spareNodes
        let reservation = try PortReservation(count: 2 * n + options.gateways)
        defer { reservation.release() }
        let raftPorts = Array(reservation.ports[0..<n])
        let kvPorts = Array(reservation.ports[n..<(2 * n)])
        gatewayPorts = Array(reservation.ports[(2 * n)...])
        for i in 1...n {
            kvdPorts[i] = kvPorts[i - 1]
            raftdPorts[i] = raftPorts[i - 1]
            var proxies: [Int: FaultProxy] = [:]
            for j in 1...n where j != i {
                proxies[j] = try FaultProxy(target: .tcp(host: "127.0.0.1", port: raftPorts[j - 1]))
            }
            peerProxies[i] = proxies
        }
        for i in 1...n {
            let peers = (1...seeds).map { j in
                j == i ? "\(j)=127.0.0.1:\(raftPorts[j - 1])" : "\(j)=127.0.0.1:\(peerProxies[i]![j]!.port)"
            }.joined(separator: ",")
            let socket = directory.appendingPathComponent("apply-\(i).sock").path
            raftds.append(ClusterProcess(
                kind: .raftd, number: i, executable: binaries.appendingPathComponent("raftd"),
                // A spare joins with no --peers at all: it learns everything from the leader.
                arguments: ["--id", "\(i)", "--listen", "127.0.0.1:\(raftPorts[i - 1])"]
                            + (i > seeds ? ["--join"] : ["--peers", peers]) + [
                            "--apply-socket", socket, "--data-dir", directory.appendingPathComponent("data-\(i)").path,
                            "--heartbeat-ms", "\(options.heartbeatMs)", "--election-ms", "\(options.electionMs)",
                            "--snapshot-log-bytes", "\(options.snapshotLogBytes)",
                            "--snapshot-catch-up-bytes", "\(options.snapshotCatchUpBytes)",
                            "--read-mode", options.readMode, "--log-level", options.effectiveLogLevel]
                            + (options.extraArguments?(.raftd, i) ?? []),
                logURL: directory.appendingPathComponent("raftd-\(i).log")))
            kvds.append(ClusterProcess(
                kind: .kvd, number: i, executable: binaries.appendingPathComponent("kvd"),
                arguments: ["--id", "\(i)", "--listen", "127.0.0.1:\(kvPorts[i - 1])", "--raft-socket", socket,
                            "--request-timeout-ms", "\(options.requestTimeoutMs)",
                            "--session-timeout-s", "\(options.sessionTimeoutS)", "--log-level", options.effectiveLogLevel]
                            + (options.extraArguments?(.kvd, i) ?? []),
                logURL: directory.appendingPathComponent("kvd-\(i).log")))
        }
        for g in 0..<options.gateways {
            var proxies: [Int: FaultProxy] = [:]
            for j in 1...n { proxies[j] = try FaultProxy(target: .tcp(host: "127.0.0.1", port: kvPorts[j - 1])) }
            gatewayProxies[g + 1] = proxies
            // Seeded with the seed nodes only: spares are learned from the cluster's configuration.
            let nodes = (1...seeds).map { "\($0)=127.0.0.1:\(proxies[$0]!.port)" }.joined(separator: ",")
            gateways.append(ClusterProcess(
                kind: .gateway, number: g + 1, executable: binaries.appendingPathComponent("kvgateway"),
                arguments: ["--listen", "127.0.0.1:\(gatewayPorts[g])", "--nodes", nodes,
                            "--request-deadline-ms", "\(options.gatewayDeadlineMs)",
                            "--attempt-timeout-ms", "\(options.requestTimeoutMs + 200)", "--log-level", options.effectiveLogLevel]
                            + (options.extraArguments?(.gateway, g + 1) ?? []),
                logURL: directory.appendingPathComponent("gateway-\(g + 1).log")))
        }
    }

    deinit {
        shutdown()
    }

    // MARK: Processes

    /// Starts every process (or only the raftds, for tests of raftd alone).
    public func start(raftdsOnly: Bool = false) throws {
        let seeds = Array(raftds.prefix(options.nodes)) + (raftdsOnly ? [] : Array(kvds.prefix(options.nodes)) + gateways)
        for process in seeds { try process.start() }
    }

    /// Ids of every node, spares included.
    public var allNodeIDs: ClosedRange<Int> { 1...(options.nodes + options.spareNodes) }

    /// raftd `id`'s apply socket.
    public func applySocket(_ id: Int) -> String { directory.appendingPathComponent("apply-\(id).sock").path }

    public var allProcesses: [ClusterProcess] { raftds + kvds + gateways }

    public func raftd(_ id: Int) -> ClusterProcess { raftds[id - 1] }
    public func kvd(_ id: Int) -> ClusterProcess { kvds[id - 1] }
    public func gateway(_ number: Int) -> ClusterProcess { gateways[number - 1] }

    public func kill9(_ process: ClusterProcess) { process.signal(SIGKILL) }
    public func terminate(_ process: ClusterProcess) { process.signal(SIGTERM) }
    public func pause(_ process: ClusterProcess) { process.signal(SIGSTOP) }
    public func resume(_ process: ClusterProcess) { process.signal(SIGCONT) }
    public func restart(_ process: ClusterProcess) throws {
        process.signal(SIGKILL)
        try process.start()
    }

    /// Stops every process and proxy; removes the temp dir unless `keepFiles`.
    public func shutdown() {
        for process in allProcesses {
            process.signal(SIGCONT)
            process.signal(SIGKILL)
        }
        for proxies in peerProxies.values { for proxy in proxies.values { proxy.stop() } }
        for proxies in gatewayProxies.values { for proxy in proxies.values { proxy.stop() } }
        peerProxies.removeAll()
        gatewayProxies.removeAll()
        if !keepFiles { try? FileManager.default.removeItem(at: directory) }
    }

    /// The last lines of every process's log, for a failing test's report.
    public func logs(lines: Int = 20) -> String {
        allProcesses.map { "== \($0.name) ==\n\($0.logTail(lines: lines))" }.joined(separator: "\n")
    }

    // MARK: Endpoints

    public var gatewayEndpoints: [Endpoint] { gatewayPorts.map { .tcp(host: "127.0.0.1", port: $0) } }
    /// kvd client addresses in node order (direct, not through a proxy).
    public var kvdEndpoints: [Endpoint] { (1...options.nodes).map { .tcp(host: "127.0.0.1", port: kvdPorts[$0]!) } }

    // MARK: Network faults

    /// Cuts every raftd link between different groups (and heals links within a group).
    /// Gateways keep reaching every kvd unless `gatewaysReach` says otherwise.
    public func partition(_ groups: [[Int]], gatewaysReach: [Int]? = nil) {
        var group: [Int: Int] = [:]
        for (g, members) in groups.enumerated() { for m in members { group[m] = g } }
        for (i, proxies) in peerProxies {
            for (j, proxy) in proxies {
                if group[i] != nil && group[i] == group[j] { proxy.heal() } else { proxy.partition() }
            }
        }
        if let reach = gatewaysReach {
            for proxies in gatewayProxies.values {
                for (j, proxy) in proxies { if reach.contains(j) { proxy.heal() } else { proxy.partition() } }
            }
        }
    }

    /// What the proxy between gateway `number` and seed kvd `node` saw: how often the gateway
    /// dialed it (`accepted`) and whether its link is open (`active`).
    public func gatewayLinkStats(gateway number: Int, node: Int) -> FaultProxy.Stats? { gatewayProxies[number]?[node]?.stats }

    /// Lets gateway `number` reach only the kvds of `nodes` (others are cut).
    public func setGatewayReach(_ number: Int, nodes: [Int]) {
        for (j, proxy) in gatewayProxies[number] ?? [:] {
            if nodes.contains(j) { proxy.heal() } else { proxy.partition() }
        }
    }

    /// Restores every link and removes delays and drops.
    public func heal() {
        for proxy in allProxies {
            proxy.heal()
            proxy.setDelay(ms: 0)
            proxy.setDropProbability(0)
        }
    }

    /// Unreliable network: every raftd link delays up to `delayMs` and drops connections with
    /// probability `drop` per forwarded chunk.
    public func setUnreliable(delayMs: Double, drop: Double, includeGateways: Bool = true) {
        for proxies in peerProxies.values { for proxy in proxies.values { proxy.setDelay(ms: delayMs); proxy.setDropProbability(drop) } }
        if includeGateways {
            for proxies in gatewayProxies.values { for proxy in proxies.values { proxy.setDelay(ms: delayMs / 2); proxy.setDropProbability(drop / 2) } }
        }
    }

    public var raftLinks: [(from: Int, to: Int, proxy: FaultProxy)] {
        peerProxies.flatMap { i, proxies in proxies.map { (i, $0.key, $0.value) } }.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
    }

    private var allProxies: [FaultProxy] {
        peerProxies.values.flatMap(\.values) + gatewayProxies.values.flatMap(\.values)
    }

    // MARK: Observation

    /// Each reachable kvd's view of its node (role, term, leader, commit, applied).
    public func nodeStatuses(timeoutMs: Double = 500) -> [Int: NodeStatus] {
        var statuses: [Int: NodeStatus] = [:]
        for id in allNodeIDs where kvd(id).isRunning {
            let connection = KVConnection(endpoint: .tcp(host: "127.0.0.1", port: kvdPorts[id]!))
            if let response = try? connection.call(KvRequest(op: .status), timeoutMs: timeoutMs), let node = response.nodes.first {
                statuses[id] = node
            }
            connection.close()
        }
        return statuses
    }

    /// The node whose raftd leads in the highest term, as its kvd reports.
    public func leaderID() -> Int? {
        nodeStatuses().filter { $0.value.role == "leader" }.max { $0.value.term < $1.value.term }?.key
    }

    /// Waits until some node leads and its kvd is attached.
    @discardableResult
    public func waitForLeader(timeoutMs: Double = 10_000) -> Int? {
        let deadline = Date().addingTimeInterval(timeoutMs / 1000)
        while Date() < deadline {
            if let leader = leaderID() { return leader }
            usleep(20_000)
        }
        return nil
    }

    // MARK: Binaries

    private static let buildLock = Mutex<URL?>(nil)

    /// `$KVRAFT_BIN_DIR`, else this package's debug build (built once if missing).
    public static func binaryDirectory() throws -> URL {
        if let dir = ProcessInfo.processInfo.environment["KVRAFT_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return try buildLock.withLock { cached in
            if let cached { return cached }
            let dir = packageRoot.appendingPathComponent(".build/debug")
            let names = ["raftd", "kvd", "kvgateway", "kvctl"]
            if !names.allSatisfy({ FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent($0).path) }) {
                let build = Process()
                build.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                build.arguments = ["swift", "build"]
                build.currentDirectoryURL = packageRoot
                try build.run()
                build.waitUntilExit()
            }
            cached = dir
            return dir
        }
    }
}
