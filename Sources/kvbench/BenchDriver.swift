import EventLoop
import Histogram
import Wire
import SeededRandom

/// One simulated client: its own session (client_id, seq from 1) and at most one operation
/// outstanding, retried with the same seq until a definite answer — exactly-once on.
final class BenchClient {
    let index: Int
    var clientID: UInt64
    var nextSeq: UInt64 = 1
    /// Link the client talks over now.
    var link: Int
    var busy = false
    var request = KvRequest()
    /// Bumped on every send; carried in the request id so stale answers are dropped.
    var attempt: UInt32 = 0
    var firstSentNanos: UInt64 = 0
    var lastSentNanos: UInt64 = 0
    /// The op counts in the measurement (issued in the measured phase, or earlier but
    /// completing in it); preload ops never do.
    var isPreload = false

    init(index: Int, clientID: UInt64, link: Int) {
        self.index = index
        self.clientID = clientID
        self.link = link
    }
}

/// One connection to a target, shared by several clients; frames are batched per loop pass.
final class BenchLink {
    let index: Int
    let target: Int
    let dialer: Dialer
    var reader = FrameReader<KvResponse>()
    var out: [UInt8] = []
    var dirty = false
    var connected = false
    /// Clients whose request waits for this link to (re)connect.
    var stalled: [Int] = []

    init(index: Int, target: Int, dialer: Dialer) {
        self.index = index
        self.target = target
        self.dialer = dialer
    }
}

/// Drives the workload on one loop, on one thread.
final class BenchDriver {
    enum Phase { case connecting, preload, warmup, measure, done }

    private let config: BenchConfig
    private let loop: EventLoop
    private let keyspace: Keyspace
    private var rng: SeededGenerator
    private var links: [BenchLink] = []
    private var clients: [BenchClient] = []
    /// Links by target index.
    private var linksByTarget: [[Int]] = []
    private var targetByNodeID: [UInt64: Int] = [:]
    private let accounting: ProcessAccounting
    private let log: (String) -> Void

    static let preloadClients = 64

    private(set) var phase: Phase = .connecting
    private let flush: DeferredAction
    private let retryTimer: Timer
    private let secondTimer: Timer
    private let phaseTimer: Timer
    private var retryQueue: [(due: UInt64, client: Int)] = []

    private var preloadNext = 0
    private var issuedMeasured = 0
    private var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    private var completedMeasured = 0
    private var completedTotal = 0
    private var lastProgressCompleted = 0
    private var statusCounts: [String: Int] = [:]
    private var errorCount = 0
    private var measureStartNanos: UInt64 = 0
    private var measureEndNanos: UInt64 = 0
    private var phaseStartNanos: UInt64 = 0
    private var benchCPUAtStart = 0.0
    private var benchCPUAtEnd = 0.0
    private var failure: String?

    init(config: BenchConfig, loop: EventLoop, accounting: ProcessAccounting, log: @escaping (String) -> Void) {
        self.config = config
        self.loop = loop
        flush = DeferredAction(loop: loop)
        retryTimer = Timer(loop: loop, repeating: true)
        secondTimer = Timer(loop: loop, repeating: true)
        phaseTimer = Timer(loop: loop)
        self.accounting = accounting
        self.log = log
        rng = SeededGenerator(seed: config.seed)
        keyspace = Keyspace(count: config.keys, keySize: config.keySize, valueSize: config.valueSize, rng: &rng)
        for (i, target) in config.targets.enumerated() {
            if let id = target.nodeID { targetByNodeID[id] = i }
        }
    }

    /// Runs the whole benchmark; returns the result, or throws what went wrong.
    func run() throws -> BenchResult {
        flush.action = { [unowned self] in self.flushLinks() }
        retryTimer.action = { [unowned self] in self.runRetries() }
        secondTimer.action = { [unowned self] in self.everySecond() }
        phaseTimer.action = { [unowned self] in self.phaseTimerFired() }

        linksByTarget = Array(repeating: [], count: config.targets.count)
        let tls = try config.tls.map { TLSDial(context: try TLSContext(files: $0), expectedName: nil) }
        for i in 0..<config.conns {
            let target = i % config.targets.count
            let link = BenchLink(index: i, target: target,
                                 dialer: Dialer(loop: loop, endpoint: config.targets[target].endpoint, minBackoffMs: 20, maxBackoffMs: 500, tls: tls))
            links.append(link)
            linksByTarget[target].append(i)
            link.dialer.onConnected = { [unowned self, unowned link] connection in self.connected(link, connection) }
            link.dialer.onDisconnected = { [unowned self, unowned link] reason in self.disconnected(link, reason) }
        }
        // A preload runs with at least `preloadClients` in flight (extra clients that do
        // nothing else), so loading 10,000 keys for a 1-client run takes seconds, not minutes.
        let clientCount = config.preload ? max(config.clients, BenchDriver.preloadClients) : config.clients
        for i in 0..<clientCount {
            clients.append(BenchClient(index: i, clientID: newClientID(), link: i % config.conns))
        }
        for link in links { link.dialer.start() }
        retryTimer.schedule(milliseconds: 2)
        secondTimer.schedule(milliseconds: 1000)
        phaseStartNanos = EventLoop.monotonicNanos()
        loop.run()
        if let failure { throw BenchFailure(failure) }
        return makeResult()
    }

    private func newClientID() -> UInt64 {
        while true {
            let id = rng.next()
            if id != 0 { return id }
        }
    }

    // MARK: Phases

    private func connected(_ link: BenchLink, _ connection: Connection) {
        link.connected = true
        link.reader = FrameReader()
        link.out.removeAll(keepingCapacity: true)
        connection.onRead = { [unowned self, unowned link] conn in self.receive(link, conn) }
        if phase == .connecting {
            if links.allSatisfy(\.connected) { startNextPhase() }
            return
        }
        let waiting = link.stalled
        link.stalled = []
        for c in waiting where clients[c].busy && clients[c].link == link.index { send(clients[c]) }
    }

    private func disconnected(_ link: BenchLink, _ reason: Connection.CloseReason) {
        let wasConnected = link.connected
        link.connected = false
        link.out.removeAll(keepingCapacity: true)
        // While connecting the dialer just retries (everySecond gives up after 10 s).
        if phase == .connecting || phase == .done { return }
        if wasConnected {
            count("CONNECTION_LOST", error: true)
            log("kvbench: connection to \(config.targets[link.target].endpoint) lost (\(reason)); resending its requests")
        }
        // Requests on the lost link: move them to a live link of another target if there is one.
        for client in clients where client.busy && client.link == link.index {
            if let other = liveLink(excludingTarget: link.target) { client.link = other }
            send(client)
        }
    }

    private func startNextPhase() {
        let now = EventLoop.monotonicNanos()
        phaseStartNanos = now
        switch phase {
        case .connecting:
            if config.preload {
                phase = .preload
                log("kvbench: preloading \(config.keys) keys")
                for client in clients { issue(client) }
                return
            }
            fallthrough
        case .preload:
            if config.warmupSeconds > 0 {
                phase = .warmup
                log("kvbench: warming up for \(config.warmupSeconds) s")
                phaseTimer.schedule(milliseconds: config.warmupSeconds * 1000)
                for client in clients where !client.busy { issue(client) }
                return
            }
            fallthrough
        case .warmup:
            phase = .measure
            measureStartNanos = now
            lastProgressCompleted = 0
            accounting.begin()
            benchCPUAtStart = ProcessAccounting.selfCPUSeconds()
            if config.total == nil { phaseTimer.schedule(milliseconds: config.durationSeconds * 1000) }
            for client in clients where !client.busy { issue(client) }
        case .measure:
            phase = .done
            measureEndNanos = now
            accounting.sample()
            benchCPUAtEnd = ProcessAccounting.selfCPUSeconds()
            loop.stop()
        case .done:
            break
        }
    }

    private func phaseTimerFired() {
        if phase == .warmup || phase == .measure { startNextPhase() }
    }

    private func everySecond() {
        if phase == .connecting {
            if EventLoop.monotonicNanos() - phaseStartNanos > 10_000_000_000 {
                let down = links.filter { !$0.connected }.map { config.targets[$0.target].endpoint.description }
                fail("could not connect within 10 s to \(Set(down).sorted().joined(separator: ", "))")
            }
            return
        }
        accounting.sample()
        guard config.progress else { return }
        let now = EventLoop.monotonicNanos()
        let busy = clients.reduce(0) { $0 + ($1.busy ? 1 : 0) }
        switch phase {
        case .preload:
            log("kvbench: preload \(min(preloadNext, config.keys))/\(config.keys) keys, \(busy) in flight, errors \(errorCount)")
        case .warmup:
            log("kvbench: warmup \(fixed(Double(now - phaseStartNanos) / 1e9, 0)) s, \(completedTotal) ops so far, \(busy) in flight")
        case .measure:
            let elapsed = Double(now - measureStartNanos) / 1e9
            let delta = completedMeasured - lastProgressCompleted
            lastProgressCompleted = completedMeasured
            let p99 = Double(histogram.valueAtPercentile(99)) / 1000
            log("kvbench: [\(fixed(elapsed, 1).leftPad(5)) s] \(delta) ops/s  total \(completedMeasured)  in flight \(busy)  p99 so far \(fixed(p99, 2)) ms  errors \(errorCount)")
        default:
            break
        }
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = message
        phase = .done
        loop.stop()
    }

    // MARK: Operations

    /// Starts the client's next operation, if the phase wants one.
    private func issue(_ client: BenchClient) {
        let op: Op
        let key: [UInt8]
        var value: [UInt8] = []
        switch phase {
        case .preload:
            guard preloadNext < config.keys else {
                if !clients.contains(where: \.busy) { startNextPhase() }
                return
            }
            op = .put
            key = keyspace.keys[preloadNext]
            preloadNext += 1
            client.isPreload = true
        case .warmup, .measure:
            guard client.index < config.clients else { return }
            if phase == .measure, let total = config.total {
                guard issuedMeasured < total else { return }
                issuedMeasured += 1
            }
            client.isPreload = false
            switch config.op {
            case .put: op = .put
            case .get: op = .get
            case .append: op = .append
            case .mixed: op = Double(rng.next() >> 11) / Double(1 << 53) < config.readRatio ? .get : .put
            }
            key = keyspace.keys[Int(rng.next() % UInt64(config.keys))]
        case .connecting, .done:
            return
        }
        if op != .get { value = keyspace.values[Int(rng.next() % UInt64(keyspace.values.count))] }
        client.request = KvRequest(clientID: client.clientID, seq: client.nextSeq, op: op, key: key, value: value)
        client.nextSeq += 1
        client.busy = true
        client.firstSentNanos = EventLoop.monotonicNanos()
        send(client)
    }

    /// Sends (or resends, same seq) the client's outstanding request.
    private func send(_ client: BenchClient) {
        client.attempt &+= 1
        client.request.requestID = UInt64(client.index) << 32 | UInt64(client.attempt)
        client.lastSentNanos = EventLoop.monotonicNanos()
        let link = links[client.link]
        guard link.connected else {
            if !link.stalled.contains(client.index) { link.stalled.append(client.index) }
            return
        }
        client.request.appendFrame(to: &link.out)
        if !link.dirty {
            link.dirty = true
            flush.schedule()
        }
    }

    private func flushLinks() {
        for link in links where link.dirty {
            link.dirty = false
            guard link.connected, let connection = link.dialer.connection else { continue }
            connection.write(link.out)
            link.out.removeAll(keepingCapacity: true)
        }
    }

    private func receive(_ link: BenchLink, _ connection: Connection) {
        do {
            try link.reader.readMessages(from: connection) { response in
                handle(response, on: link)
                return phase == .done ? .stop : .more
            }
        } catch {
            log("kvbench: bad frame from \(config.targets[link.target].endpoint): \(error); reconnecting")
            link.dialer.reset()
            disconnected(link, .error("\(error)"))
        }
    }

    private func handle(_ response: KvResponse, on link: BenchLink) {
        let index = Int(response.requestID >> 32)
        guard index < clients.count else { return count("STALE", error: false) }
        let client = clients[index]
        guard client.busy, client.attempt == UInt32(truncatingIfNeeded: response.requestID) else {
            return count("STALE", error: false)
        }
        count(response.status.description, error: !(response.status == .ok || response.status == .noKey))
        switch response.status {
        case .ok, .noKey:
            complete(client, ok: true)
        case .badRequest:
            log("kvbench: BAD_REQUEST: \(response.message)")
            complete(client, ok: false)
        case .sessionExpired:
            // Applied earlier, its reply no longer kept: never re-run it (the next op takes the next seq).
            log("kvbench: SESSION_EXPIRED (applied earlier, reply lost): \(response.message)")
            complete(client, ok: false)
        case .wrongLeader:
            var moved = false
            if let hint = UInt64(response.leaderHint), let target = targetByNodeID[hint], target != link.target,
               let other = liveLink(ofTarget: target) {
                client.link = other
                moved = true
            } else if let other = liveLink(excludingTarget: link.target) {
                client.link = other
                moved = true
            }
            if moved { send(client) } else { retryLater(client, afterMs: 10) }
        default:
            retryLater(client, afterMs: 5)
        }
    }

    private func complete(_ client: BenchClient, ok: Bool) {
        client.busy = false
        let now = EventLoop.monotonicNanos()
        completedTotal += 1
        if phase == .measure && !client.isPreload && ok {
            completedMeasured += 1
            _ = histogram.record(max(1, (now - client.firstSentNanos) / 1000))
            if let total = config.total, completedMeasured >= total {
                startNextPhase()
                return
            }
        }
        issue(client)
    }

    private func liveLink(ofTarget target: Int) -> Int? {
        linksByTarget[target].first { links[$0].connected }
    }

    private func liveLink(excludingTarget target: Int) -> Int? {
        guard config.targets.count > 1 else { return nil }
        for step in 1..<config.targets.count {
            let t = (target + step) % config.targets.count
            let candidates = linksByTarget[t].filter { links[$0].connected }
            if !candidates.isEmpty { return candidates[Int(rng.next() % UInt64(candidates.count))] }
        }
        return nil
    }

    private func retryLater(_ client: BenchClient, afterMs: Double) {
        retryQueue.append((due: EventLoop.monotonicNanos() + UInt64(afterMs * 1_000_000), client: client.index))
    }

    /// Due retries, and resends of attempts that got no answer in time.
    private func runRetries() {
        let now = EventLoop.monotonicNanos()
        if !retryQueue.isEmpty {
            var later: [(due: UInt64, client: Int)] = []
            let due = retryQueue
            retryQueue = []
            for item in due {
                if item.due <= now { send(clients[item.client]) } else { later.append(item) }
            }
            retryQueue.append(contentsOf: later)
        }
        let timeout = UInt64(config.attemptTimeoutMs * 1_000_000)
        for client in clients where client.busy && now > client.lastSentNanos && now - client.lastSentNanos > timeout {
            count("CLIENT_TIMEOUT", error: true)
            send(client)
        }
    }

    private func count(_ status: String, error: Bool) {
        guard phase == .measure else { return }
        statusCounts[status, default: 0] += 1
        if error { errorCount += 1 }
    }

    // MARK: Result

    private func makeResult() -> BenchResult {
        let elapsed = Double(measureEndNanos - measureStartNanos) / 1e9
        let ms = { (micros: UInt64) in Double(micros) / 1000 }
        let processes = accounting.report()
        let cpu = processes.reduce(0) { $0 + $1.cpuSeconds }
        return BenchResult(
            label: config.label,
            target: config.targets.map(\.description).joined(separator: ","),
            op: config.op.rawValue,
            readRatio: config.op == .mixed ? config.readRatio : nil,
            clients: config.clients, conns: config.conns,
            keySize: config.keySize, valueSize: config.valueSize, keys: config.keys,
            preloaded: config.preload, warmupSeconds: config.warmupSeconds,
            elapsedSeconds: elapsed,
            ops: completedMeasured,
            opsPerSecond: elapsed > 0 ? Double(completedMeasured) / elapsed : 0,
            latency: LatencySummary(
                p50Ms: ms(histogram.valueAtPercentile(50)), p90Ms: ms(histogram.valueAtPercentile(90)),
                p99Ms: ms(histogram.valueAtPercentile(99)), p999Ms: ms(histogram.valueAtPercentile(99.9)),
                maxMs: ms(histogram.max), meanMs: histogram.mean / 1000),
            errors: errorCount,
            responsesByStatus: statusCounts,
            processes: processes,
            cpuMicrosPerOp: processes.isEmpty || completedMeasured == 0 ? nil : cpu / Double(completedMeasured) * 1e6,
            maxRssMB: processes.map(\.peakRssMB).max(),
            benchCpuSeconds: benchCPUAtEnd - benchCPUAtStart)
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
