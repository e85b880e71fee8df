import EventLoop
import class EventLoop.Timer
import Foundation
import Synchronization
import Wire
import Raft
import SeededRandom

/// Many session clients multiplexed over a few connections to one gateway, as an application
/// server with a connection pool would: each connection runs on its own thread and loop and
/// carries several clients' requests at once. Each client runs one operation at a time on its
/// own key (appends of unique elements, some reads), retries it with the same (client_id, seq)
/// — on its own attempt timeout, on UNAVAILABLE/TIMEOUT, on a lost connection — until its
/// operation deadline, and records everything in a history for `verify()`.
public final class SharedConnectionLoad: Sendable {
    public struct Options: Sendable {
        public var connections = 2
        public var clientsPerConnection = 4
        /// A client resends its operation after this long without an answer.
        public var attemptTimeoutMs = 1000.0
        /// A client gives up on an operation (outcome unknown) after this long.
        public var operationTimeoutMs = 8000.0
        public var readFraction = 0.3
        public var thinkTimeMs = 5.0
        public var maxOpsPerClient = 400
        public var seed: UInt64 = 1

        public init() {}
    }

    public let recorder = HistoryRecorder()
    private let options: Options
    private let endpoint: Endpoint
    private let stopFlag = Atomic<Bool>(false)
    private let finishedThreads = Mutex<Int>(0)
    private let completedByClient: Mutex<[Int: Int]>
    private let appendsByKey = Mutex<[String: [Int: [AppendAttempt]]]>([:])

    public init(endpoint: Endpoint, options: Options) {
        self.endpoint = endpoint
        self.options = options
        completedByClient = Mutex(Dictionary(uniqueKeysWithValues: (0..<(options.connections * options.clientsPerConnection)).map { ($0, 0) }))
    }

    public var clientCount: Int { options.connections * options.clientsPerConnection }

    /// Definite answers so far, per client.
    public var completedByClientNow: [Int: Int] { completedByClient.withLock { $0 } }
    public var completed: Int { completedByClientNow.values.reduce(0, +) }

    public func start() {
        for connection in 0..<options.connections {
            let thread = Thread { [self] in
                let first = connection * options.clientsPerConnection
                ConnectionDriver(load: self, clients: Array(first..<(first + options.clientsPerConnection))).run()
                finishedThreads.withLock { $0 += 1 }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Asks clients to stop after their current operation, and waits (bounded by the operation
    /// timeout) for every connection's thread.
    public func stop() {
        stopFlag.store(true, ordering: .relaxed)
        let limit = Date().addingTimeInterval(options.operationTimeoutMs / 1000 + 5)
        while finishedThreads.withLock({ $0 }) < options.connections && Date() < limit { usleep(5000) }
    }

    /// Reads every key through `endpoints` and checks exactly-once appends and linearizability.
    public func verify(through endpoints: [Endpoint]) -> [String] {
        Workload.verifyAppends(appendsByKey.withLock { $0 }, recorder: recorder, endpoints: endpoints)
    }

    fileprivate var isStopping: Bool { stopFlag.load(ordering: .relaxed) }
    fileprivate var settings: Options { options }
    fileprivate var target: Endpoint { endpoint }

    fileprivate func completedOne(_ client: Int) { completedByClient.withLock { $0[client, default: 0] += 1 } }

    fileprivate func recordAppend(key: String, client: Int, index: Int, acknowledged: Bool) {
        appendsByKey.withLock { $0[key, default: [:]][client, default: []].append(AppendAttempt(index: index, acknowledged: acknowledged)) }
    }
}

/// One connection's loop and the clients multiplexed on it.
private final class ConnectionDriver {
    struct Client {
        let id: Int
        var session: UInt64
        var seq: UInt64 = 0
        var nextElement = 0
        var random: SeededGenerator
        var current: Current?
        var nextStartAt: UInt64 = 0
        var ops = 0
    }

    struct Current {
        var request: KvRequest
        var token: HistoryRecorder.Token
        var element: Int?
        let deadline: UInt64
        var lastSentAt: UInt64 = 0
        /// 0 until sent; set to resend at this time (after an error answer).
        var resendAt: UInt64 = 0
    }

    private let load: SharedConnectionLoad
    private let loop = EventLoop()
    private var dialer: Dialer!
    private var decoder = FrameDecoder()
    private var clients: [Client]
    /// Request id → the client (index in `clients`) and which of its operations it carries, so
    /// a late answer to an earlier operation is not taken for the current one's.
    private var byRequestID: [UInt64: (index: Int, op: Int)] = [:]
    private var nextRequestID: UInt64 = 1
    private var ticker: Timer!

    init(load: SharedConnectionLoad, clients ids: [Int]) {
        self.load = load
        clients = ids.map { id in
            Client(id: id, session: UInt64(id + 1) << 40 | UInt64.random(in: 1...(1 << 39)),
                   random: SeededGenerator(seed: load.settings.seed &* 7919 &+ UInt64(id)))
        }
    }

    func run() {
        dialer = Dialer(loop: loop, endpoint: load.target, minBackoffMs: 10, maxBackoffMs: 200)
        dialer.onConnected = { [unowned self] connection in
            decoder = FrameDecoder()
            connection.onRead = { [unowned self] conn in receive(conn) }
            // Whatever was in flight on the old connection goes again, same seq.
            let now = EventLoop.monotonicNanos()
            for index in clients.indices where clients[index].current != nil { send(index, now: now) }
        }
        dialer.start()
        ticker = Timer(loop: loop, repeating: true) { [unowned self] in step() }
        ticker.schedule(milliseconds: 2)
        while !(load.isStopping && clients.allSatisfy({ $0.current == nil })) {
            loop.runOnce(blocking: true)
        }
        ticker.cancel()
        dialer.stop()
    }

    private func step() {
        let now = EventLoop.monotonicNanos()
        let settings = load.settings
        for index in clients.indices {
            guard let current = clients[index].current else {
                if !load.isStopping, clients[index].ops < settings.maxOpsPerClient, now >= clients[index].nextStartAt { start(index, now: now) }
                continue
            }
            if now >= current.deadline {
                finish(index, outcome: nil)
            } else if current.resendAt != 0 && now >= current.resendAt {
                send(index, now: now)
            } else if current.resendAt == 0 && now - current.lastSentAt >= UInt64(settings.attemptTimeoutMs * 1_000_000) {
                send(index, now: now)  // impatient: the earlier copy is still owed an answer, and ignored
            }
        }
    }

    private func start(_ index: Int, now: UInt64) {
        var client = clients[index]
        client.ops += 1
        client.seq += 1
        let key = Workload.key(client: client.id)
        let keyBytes = Array(key.utf8)
        let deadline = now + UInt64(load.settings.operationTimeoutMs * 1_000_000)
        if Double.random(in: 0..<1, using: &client.random) < load.settings.readFraction {
            let token = load.recorder.begin(clientID: client.id, kind: .get, key: keyBytes)
            client.current = Current(request: KvRequest(clientID: client.session, seq: client.seq, op: .get, key: keyBytes),
                                     token: token, element: nil, deadline: deadline)
        } else {
            let element = client.nextElement
            client.nextElement += 1
            let value = AppendElement.bytes(clientID: client.id, index: element)
            let token = load.recorder.begin(clientID: client.id, kind: .append, key: keyBytes, value: value)
            client.current = Current(request: KvRequest(clientID: client.session, seq: client.seq, op: .append, key: keyBytes, value: value),
                                     token: token, element: element, deadline: deadline)
        }
        clients[index] = client
        send(index, now: now)
    }

    private func send(_ index: Int, now: UInt64) {
        guard var current = clients[index].current else { return }
        current.lastSentAt = now
        current.resendAt = 0
        clients[index].current = current
        guard let connection = dialer.connection else { return }  // sent again on reconnect
        var request = current.request
        request.requestID = nextRequestID
        nextRequestID += 1
        byRequestID[request.requestID] = (index, clients[index].ops)
        connection.write(request.framed())
    }

    private func receive(_ connection: Connection) {
        decoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
        while let frame = try? decoder.nextFrame() {
            guard let response = try? KvResponse(serialized: frame),
                  let (index, op) = byRequestID.removeValue(forKey: response.requestID),
                  clients[index].ops == op, var current = clients[index].current else { continue }
            switch response.status {
            case .ok, .noKey:
                finish(index, outcome: response)
            case .sessionExpired:
                finish(index, outcome: nil)  // applied earlier or not: either way not a definite reply
            default:
                // UNAVAILABLE, TIMEOUT, …: the same seq again shortly, until the deadline.
                current.resendAt = EventLoop.monotonicNanos() + 10_000_000
                clients[index].current = current
            }
        }
    }

    /// `outcome` nil: unknown (gave up or SESSION_EXPIRED).
    private func finish(_ index: Int, outcome: KvResponse?) {
        guard let current = clients[index].current else { return }
        let id = clients[index].id
        if let outcome {
            if current.request.op == .get {
                load.recorder.end(current.token, output: outcome.status == .ok ? .value(outcome.value) : .missing)
            } else {
                load.recorder.end(current.token)
            }
            load.completedOne(id)
        } else {
            load.recorder.endUnknown(current.token)
        }
        if let element = current.element {
            load.recordAppend(key: Workload.key(client: id), client: id, index: element, acknowledged: outcome != nil)
        }
        if outcome == nil {
            // A session whose last seq's fate is unknown goes on under a new client_id.
            clients[index].session = UInt64(id + 1) << 40 | UInt64.random(in: 1...(1 << 39))
            clients[index].seq = 0
        }
        clients[index].current = nil
        let think = UInt64(Double.random(in: 0...load.settings.thinkTimeMs, using: &clients[index].random) * 1_000_000)
        clients[index].nextStartAt = EventLoop.monotonicNanos() + think
    }
}
