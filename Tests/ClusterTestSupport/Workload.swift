import EventLoop
import Foundation
import KVClient
import Synchronization
import Wire
import Raft
import SeededRandom

/// Clients hammering a cluster while a test injects faults, 6.824-style: each client
/// appends unique elements ("x CLIENT N y") and reads, recording every operation into a
/// history. Afterwards: every acknowledged append is in its key exactly once and in client
/// order, and the whole history is linearizable.
public final class Workload: Sendable {
    public struct Options: Sendable {
        public var clients = 3
        /// nil: each client appends to its own key. Otherwise clients pick among this many keys.
        public var randomKeys: Int?
        /// Fraction of operations that are Gets.
        public var readFraction = 0.4
        public var attemptTimeoutMs = 500.0
        public var operationTimeoutMs = 3000.0
        /// Most operations per client (bounds the history the checker must search).
        public var maxOpsPerClient = 1000
        /// Pause between a client's operations, so load spreads over the whole scenario.
        public var thinkTimeMs = 6.0
        public var seed: UInt64 = 1

        public init(clients: Int = 3, randomKeys: Int? = nil) {
            self.clients = clients
            self.randomKeys = randomKeys
        }
    }

    public let recorder = HistoryRecorder()
    let options: Options
    let endpoints: [Endpoint]
    private let stopFlag = Atomic<Bool>(false)
    private let appendsByKey = Mutex<[String: [Int: [AppendAttempt]]]>([:])
    private let finished = Mutex<Int>(0)
    private let completedOps = Atomic<Int>(0)

    public init(endpoints: [Endpoint], options: Options) {
        self.endpoints = endpoints
        self.options = options
    }

    /// Operations that completed with a definite answer so far.
    public var completed: Int { completedOps.load(ordering: .relaxed) }

    /// Starts the clients on their own threads.
    public func start() {
        for client in 0..<options.clients {
            let thread = Thread { [self] in
                runClient(client)
                finished.withLock { $0 += 1 }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Asks the clients to stop after their current operation and waits for them.
    public func stop() {
        stopFlag.store(true, ordering: .relaxed)
        while finished.withLock({ $0 }) < options.clients { usleep(5000) }
    }

    public static func key(client: Int) -> String { "client-\(client)" }

    private func runClient(_ client: Int) {
        var random = SeededGenerator(seed: options.seed &* 1_000_003 &+ UInt64(client))
        let clerk = Clerk(endpoints: endpoints, attemptTimeoutMs: options.attemptTimeoutMs,
                          operationTimeoutMs: options.operationTimeoutMs)
        var nextElement = 0
        var ops = 0
        while !stopFlag.load(ordering: .relaxed) && ops < options.maxOpsPerClient {
            ops += 1
            if options.thinkTimeMs > 0 { usleep(UInt32(Double.random(in: 0...options.thinkTimeMs, using: &random) * 1000)) }
            let key = options.randomKeys.map { "key-\(Int.random(in: 0..<$0, using: &random))" } ?? Workload.key(client: client)
            let keyBytes = Array(key.utf8)
            if Double.random(in: 0..<1, using: &random) < options.readFraction {
                let token = recorder.begin(clientID: client, kind: .get, key: keyBytes)
                switch clerk.get(keyBytes) {
                case let .completed(response) where response.status == .ok:
                    recorder.end(token, output: .value(response.value))
                    completedOps.add(1, ordering: .relaxed)
                case let .completed(response) where response.status == .noKey:
                    recorder.end(token, output: .missing)
                    completedOps.add(1, ordering: .relaxed)
                default:
                    recorder.endUnknown(token)
                }
            } else {
                let element = AppendElement.bytes(clientID: client, index: nextElement)
                let token = recorder.begin(clientID: client, kind: .append, key: keyBytes, value: element)
                let acknowledged: Bool
                switch clerk.append(keyBytes, element) {
                case let .completed(response) where response.status == .ok:
                    recorder.end(token)
                    completedOps.add(1, ordering: .relaxed)
                    acknowledged = true
                default:
                    recorder.endUnknown(token)
                    acknowledged = false
                }
                appendsByKey.withLock { $0[key, default: [:]][client, default: []].append(AppendAttempt(index: nextElement, acknowledged: acknowledged)) }
                nextElement += 1
            }
        }
        clerk.closeConnections()
    }

    /// After `stop()` and healing: reads every key touched and checks exactly-once appends
    /// and linearizability. Returns problems, empty when all is well.
    public func verify(checkTimeout: Duration = .seconds(60)) -> [String] {
        Workload.verifyAppends(appendsByKey.withLock { $0 }, recorder: recorder, endpoints: endpoints, checkTimeout: checkTimeout)
    }

    /// Reads every key in `appends` through `endpoints` and checks that each client's
    /// acknowledged appends are there exactly once, in order, and that `recorder`'s whole
    /// history (the final reads included) is linearizable. Returns problems, empty when all is well.
    public static func verifyAppends(_ appends: [String: [Int: [AppendAttempt]]], recorder: HistoryRecorder, endpoints: [Endpoint],
                                     checkTimeout: Duration = .seconds(60)) -> [String] {
        var problems: [String] = []
        let clerk = Clerk(endpoints: endpoints, attemptTimeoutMs: 1000, operationTimeoutMs: 20_000)
        for (key, perClient) in appends.sorted(by: { $0.key < $1.key }) {
            let keyBytes = Array(key.utf8)
            let token = recorder.begin(clientID: -1, kind: .get, key: keyBytes)
            switch clerk.get(keyBytes) {
            case let .completed(response) where response.status == .ok || response.status == .noKey:
                recorder.end(token, output: response.status == .ok ? .value(response.value) : .missing)
                let result = LinearizabilityChecker.checkAppendsExactlyOnce(finalValue: response.value, appends: perClient)
                if case let .violation(text) = result { problems.append("key \(key): \(text)") }
            case let outcome:
                recorder.endUnknown(token)
                problems.append("final read of \(key) failed: \(outcome)")
            }
        }
        clerk.closeConnections()
        let history = recorder.operations
        switch LinearizabilityChecker.check(history, timeout: checkTimeout) {
        case .linearizable: break
        case let result: problems.append("history of \(history.count) operations: \(result)")
        }
        return problems
    }
}
