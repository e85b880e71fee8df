import ArgumentParser
import EventLoop
import Foundation
import KVClient
import ServiceSupport
import Wire

/// Exit codes a shell script can rely on.
enum KvctlExit {
    static let ok: Int32 = 0
    static let noKey: Int32 = 1
    static let badRequest: Int32 = 2
    /// No answer in time, or (for a write) no longer known: see the message.
    static let unavailable: Int32 = 3
}

struct GatewayOptions: ParsableArguments {
    @Option(name: .long, help: "Gateway address(es), HOST:PORT, comma-separated; retried in turn. Default: $KVRAFT_GATEWAY or 127.0.0.1:8000.")
    var gateway: String?

    @Option(help: "Give up after this many milliseconds (the outcome of a write is then unknown).")
    var timeoutMs: Double = 10_000

    @OptionGroup(title: "TLS (for a cluster started with --tls-*)")
    var tls: TLSOptions

    func endpoints() throws -> [Endpoint] {
        let text = gateway ?? ProcessInfo.processInfo.environment["KVRAFT_GATEWAY"] ?? "127.0.0.1:8000"
        let endpoints = text.split(separator: ",").compactMap { Endpoint.parseHostPort(String($0)) }
        guard !endpoints.isEmpty else { throw ValidationError("--gateway '\(text)' is not HOST:PORT[,HOST:PORT…]") }
        return endpoints
    }

    func clerk() throws -> Clerk {
        let clerk = Clerk(endpoints: try endpoints(), attemptTimeoutMs: min(2000, timeoutMs), operationTimeoutMs: timeoutMs)
        if let files = tls.files {
            do {
                clerk.tls = try TLSContext(files: files)
            } catch {
                throw fail("\(error)", code: KvctlExit.badRequest)
            }
        }
        return clerk
    }
}

func fail(_ message: String, code: Int32) -> ExitCode {
    FileHandle.standardError.write(Data("kvctl: \(message)\n".utf8))
    return ExitCode(code)
}

/// Runs one operation and maps its outcome to output and an exit code.
func run(_ op: Op, key: String, value: String = "", options: GatewayOptions) throws {
    let outcome = try options.clerk().perform(op, Array(key.utf8), Array(value.utf8))
    switch outcome {
    case let .completed(response):
        switch response.status {
        case .ok:
            if op == .get { FileHandle.standardOutput.write(Data(response.value + [0x0a])) }
        case .noKey:
            throw fail("key not found: \(key)", code: KvctlExit.noKey)
        default:
            throw fail("refused: \(response.status) \(response.message)", code: KvctlExit.badRequest)
        }
    case let .unknown(why):
        let note = op == .get ? "" : " (the write may or may not have been applied)"
        throw fail("no answer within \(Int(options.timeoutMs)) ms: \(why)\(note)", code: KvctlExit.unavailable)
    case let .appliedReplyLost(why):
        throw fail("the \(op == .delete ? "delete" : "write") was applied once, but its reply was lost and is no longer kept (\(why)); do not run it again", code: KvctlExit.unavailable)
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the value of KEY (exit 1 if it does not exist).")
    @ParentCommand var root: Kvctl
    var options: GatewayOptions { root.options }
    @Argument(help: "The key.") var key: String
    func run() throws { try kvctl.run(.get, key: key, options: options) }
}

struct Put: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set KEY to VALUE.")
    @ParentCommand var root: Kvctl
    var options: GatewayOptions { root.options }
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value.") var value: String
    func run() throws { try kvctl.run(.put, key: key, value: value, options: options) }
}

struct Append: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Append VALUE to KEY (creating it if missing).")
    @ParentCommand var root: Kvctl
    var options: GatewayOptions { root.options }
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value to append.") var value: String
    func run() throws { try kvctl.run(.append, key: key, value: value, options: options) }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete KEY (exit 1 if it did not exist).")
    @ParentCommand var root: Kvctl
    var options: GatewayOptions { root.options }
    @Argument(help: "The key.") var key: String
    func run() throws { try kvctl.run(.delete, key: key, options: options) }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show every node: reachable, role, term, leader, last/commit/applied index, and raftd's fsync count.")
    @ParentCommand var root: Kvctl
    var options: GatewayOptions { root.options }

    func run() throws {
        let clerk = try options.clerk()
        let response: KvResponse
        do {
            response = try clerk.callOnce(KvRequest(op: .status))
        } catch {
            throw fail("gateway unreachable: \(error)", code: KvctlExit.unavailable)
        }
        let header = ["NODE", "ADDRESS", "STATE", "ROLE", "TERM", "LEADER", "SNAPSHOT", "LAST", "COMMIT", "APPLIED", "FSYNCS", "READS"]
        var rows = [header]
        for node in response.nodes.sorted(by: { $0.nodeID < $1.nodeID }) {
            let state = node.reachable ? (node.error.isEmpty ? "up" : node.error) : "down: \(node.error)"
            rows.append([String(node.nodeID), node.address, state, node.role.isEmpty ? "-" : node.role,
                         String(node.term), node.leaderID == 0 ? "-" : String(node.leaderID),
                         String(node.snapshotIndex), String(node.lastIndex), String(node.commitIndex), String(node.appliedIndex), String(node.fsyncs),
                         node.readMode.isEmpty ? "-" : node.readMode])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        if !response.nodes.contains(where: { $0.role == "leader" }) {
            throw fail("no leader", code: KvctlExit.unavailable)
        }
    }
}

struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Ask every process's /health (their --metrics-listen addresses) and print one line each, like etcdctl endpoint health; exit 3 if any is unhealthy.")

    @Option(help: "Operator endpoints, HOST:PORT, comma-separated (each process's --metrics-listen). Default: $KVRAFT_HEALTH_ENDPOINTS.")
    var endpoints: String?

    @Option(help: "Milliseconds to wait for each answer.")
    var timeoutMs: Double = 2000

    func run() throws {
        let text = endpoints ?? ProcessInfo.processInfo.environment["KVRAFT_HEALTH_ENDPOINTS"] ?? ""
        let targets = text.split(separator: ",").map(String.init)
        guard !targets.isEmpty, targets.allSatisfy({ Endpoint.parseHostPort($0) != nil }) else {
            throw ValidationError("--endpoints '\(text)' is not HOST:PORT[,HOST:PORT…]")
        }
        var unhealthy = 0
        for target in targets {
            let result = HealthProbe.check(Endpoint.parseHostPort(target)!, timeoutMs: timeoutMs)
            let took = String(format: "%.1fms", result.milliseconds)
            switch result.status {
            case 200?:
                print("\(target) is healthy: took = \(took)")
            case let status?:
                unhealthy += 1
                print("\(target) is unhealthy: HTTP \(status) \(result.detail) (took = \(took))")
            case nil:
                unhealthy += 1
                print("\(target) is unhealthy: \(result.detail)")
            }
        }
        if unhealthy > 0 { throw ExitCode(KvctlExit.unavailable) }
    }
}

struct Kvctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvctl",
        abstract: "Command-line client for kvraft.",
        discussion: """
        Exit codes: 0 success; 1 key not found (get, delete); 2 request refused (bad request); \
        3 no answer in time (for a write: outcome unknown), or a write applied by an earlier \
        attempt whose reply was lost before its session expired (applied once; do not rerun it); \
        64 usage error.
        """,
        subcommands: [Get.self, Put.self, Append.self, Delete.self, StatusCommand.self, HealthCommand.self, MemberCommandGroup.self])

    @OptionGroup var options: GatewayOptions
}

Kvctl.main()
