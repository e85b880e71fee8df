import EventLoop
import Foundation
// Foundation has a Timer too, and the module EventLoop is shadowed by its class of the same
// name; a scoped import makes `Timer` mean the loop's.
import class EventLoop.Timer
import Raft
import SeededRandom

/// A TCP proxy that injects network faults between cluster processes in tests.
///
/// It listens on 127.0.0.1 (an ephemeral port unless `listenPort` is given) and forwards
/// every accepted connection to `target`, bytes unchanged, in both directions. Faults:
/// `partition()`/`heal()`, `setDelay(ms:)` and `setDropProbability(_:)`; `FaultSchedule`
/// swizzles several proxies (FoundationDB's swizzle-clogging).
///
/// Threading: the proxy runs its own `EventLoop` on a dedicated thread, which creates and
/// owns every libevent object. The public API is thread-safe: a control call queues a
/// command that the proxy thread picks up within ~5 ms, and returns once it was applied
/// (so after `partition()` returns, old connections are closed and new ones refused).
/// Do not call controls from the proxy's own thread (nothing of yours runs there).
public final class FaultProxy: Sendable {
    /// Counters of what the proxy did.
    public struct Stats: Sendable, Equatable {
        /// Connections accepted and forwarded.
        public var accepted = 0
        /// Connection pairs open now.
        public var active = 0
        /// Connections accepted and closed at once because of a partition.
        public var refused = 0
        /// Pairs killed by `partition()` or by the drop probability.
        public var killed = 0
        /// Bytes read from either side.
        public var bytesForwarded = 0
    }

    public let target: Endpoint
    private let boundPort: Int
    private let control: ProxyControl

    /// The port clients should dial instead of the target's.
    public var port: Int { boundPort }
    /// `127.0.0.1:port`, the endpoint to hand to the client or peer under test.
    public var endpoint: Endpoint { .tcp(host: "127.0.0.1", port: boundPort) }

    /// Starts the proxy thread and waits until it listens. `seed` drives the drop decisions.
    public init(target: Endpoint, listenPort: Int = 0, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) throws {
        self.target = target
        let control = ProxyControl()
        self.control = control
        // A port no other test in this process was given (see `PortReservation`), not whatever
        // the kernel hands out: that could be one a test beside this one reserved and released
        // for a process about to bind it.
        var port = listenPort
        if port == 0 {
            let reservation = try PortReservation(count: 1)
            port = reservation.ports[0]
            reservation.release()
        }
        let listenPort = port
        let thread = Thread {
            ProxyEngine.serve(control: control, target: target, listenPort: listenPort, seed: seed)
        }
        thread.name = "FaultProxy→\(target)"
        thread.start()
        boundPort = try control.waitUntilStarted()
    }

    deinit {
        stop()
    }

    /// Drops every current connection and closes new ones as soon as they are accepted,
    /// until `heal()`.
    public func partition() { control.submit(.partition) }

    /// Ends a partition: new connections are forwarded again.
    public func heal() { control.submit(.heal) }

    /// Holds forwarded bytes for about `ms` milliseconds in each direction, in order.
    public func setDelay(ms: Double) { control.submit(.delay(ms: ms)) }

    /// Each chunk read from either side, with probability `p`, kills its connection pair
    /// instead of being forwarded (a flaky link).
    public func setDropProbability(_ p: Double) { control.submit(.dropProbability(min(1, max(0, p)))) }

    /// Closes everything and ends the proxy thread. Later calls do nothing.
    public func stop() { control.submit(.stop) }

    /// Counters as of this call (it waits for the proxy thread, ≤ ~5 ms); after `stop()`,
    /// the final counters.
    public var stats: Stats {
        control.submit(.publishStats)
        return control.stats
    }
}

/// Cuts proxies one at a time, then heals them one at a time in a different order.
public enum FaultSchedule {
    public enum Step: Equatable, Sendable, CustomStringConvertible {
        case cut(Int)
        case heal(Int)

        public var description: String {
            switch self {
            case let .cut(index): "cut \(index)"
            case let .heal(index): "heal \(index)"
            }
        }
    }

    /// A swizzle over `count` proxies: a random non-empty subset is cut one by one, then
    /// healed one by one in another order (when the subset has more than one member).
    public static func swizzlePlan<R: RandomNumberGenerator>(count: Int, using rng: inout R) -> [Step] {
        guard count > 0 else { return [] }
        var chosen = Array(0..<count).shuffled(using: &rng)
        chosen.removeLast(Int.random(in: 0..<count, using: &rng))
        var healOrder = chosen.shuffled(using: &rng)
        if healOrder.count > 1 {
            while healOrder == chosen { healOrder.shuffle(using: &rng) }
        }
        return chosen.map(Step.cut) + healOrder.map(Step.heal)
    }

    /// Runs `plan` on `proxies`, sleeping `stepMs` after each step. Blocks the calling thread.
    public static func run(_ plan: [Step], on proxies: [FaultProxy], stepMs: Double) {
        for step in plan {
            switch step {
            case let .cut(index): proxies[index].partition()
            case let .heal(index): proxies[index].heal()
            }
            Thread.sleep(forTimeInterval: stepMs / 1000)
        }
    }

    /// One seeded swizzle; returns the plan it ran, so a failing test can print it.
    @discardableResult
    public static func swizzle(_ proxies: [FaultProxy], seed: UInt64, stepMs: Double = 50) -> [Step] {
        var rng = SeededGenerator(seed: seed)
        let plan = swizzlePlan(count: proxies.count, using: &rng)
        run(plan, on: proxies, stepMs: stepMs)
        return plan
    }
}


// MARK: - Cross-thread control

private enum ProxyCommand: Sendable {
    case partition
    case heal
    case delay(ms: Double)
    case dropProbability(Double)
    case publishStats
    case stop
}

/// Everything the test threads and the proxy thread share, guarded by `condition`.
private final class ProxyControl: @unchecked Sendable {
    private let condition = NSCondition()
    private var commands: [ProxyCommand] = []
    private var submitted: UInt64 = 0
    private var applied: UInt64 = 0
    private var started: Result<Int, EventLoopError>?
    private var finished = false
    private var published = FaultProxy.Stats()

    func submit(_ command: ProxyCommand) {
        condition.lock()
        defer { condition.unlock() }
        guard !finished else { return }
        commands.append(command)
        submitted += 1
        let ticket = submitted
        while applied < ticket, !finished { condition.wait() }
    }

    /// Proxy thread: the queued commands and the ticket to acknowledge once they are applied.
    func takeCommands() -> ([ProxyCommand], UInt64) {
        condition.lock()
        defer { condition.unlock() }
        let taken = commands
        commands.removeAll()
        return (taken, submitted)
    }

    func acknowledge(_ ticket: UInt64, stats: FaultProxy.Stats) {
        condition.lock()
        applied = max(applied, ticket)
        published = stats
        condition.broadcast()
        condition.unlock()
    }

    func publish(_ stats: FaultProxy.Stats) {
        condition.lock()
        published = stats
        condition.unlock()
    }

    var stats: FaultProxy.Stats {
        condition.lock()
        defer { condition.unlock() }
        return published
    }

    func reportStarted(_ result: Result<Int, EventLoopError>) {
        condition.lock()
        started = result
        if case .failure = result { finished = true }
        condition.broadcast()
        condition.unlock()
    }

    func waitUntilStarted() throws -> Int {
        condition.lock()
        defer { condition.unlock() }
        while started == nil { condition.wait() }
        return try started!.get()
    }

    func reportFinished(_ stats: FaultProxy.Stats) {
        condition.lock()
        finished = true
        published = stats
        condition.broadcast()
        condition.unlock()
    }
}

// MARK: - The proxy thread

/// Lives on the proxy thread only; owns the loop and every connection.
private final class ProxyEngine {
    static let pollMs = 5.0
    /// Proxy connections: a stalled side pushes back on the other instead of buffering.
    static let limits = Connection.Limits(lowWater: 64 * 1024, highWater: 256 * 1024,
                                          maxOutputBytes: 64 * 1024 * 1024, readChunk: 256 * 1024)
    /// Most delayed bytes held per direction before the source is paused.
    static let maxDelayedBytes = 1024 * 1024

    let loop: EventLoop
    let control: ProxyControl
    let target: Endpoint
    var listener: Listener?
    var pairs: [ObjectIdentifier: ProxyPair] = [:]
    var poller: Timer?
    var partitioned = false
    var delayNanos: UInt64 = 0
    var dropProbability = 0.0
    var rng: SeededGenerator
    var stats = FaultProxy.Stats()

    static func serve(control: ProxyControl, target: Endpoint, listenPort: Int, seed: UInt64) {
        let engine = ProxyEngine(loop: EventLoop(), control: control, target: target, seed: seed)
        do {
            try engine.start(listenPort: listenPort)
        } catch let error as EventLoopError {
            control.reportStarted(.failure(error))
            return
        } catch {
            control.reportStarted(.failure(EventLoopError("\(error)")))
            return
        }
        control.reportStarted(.success(engine.listener?.port ?? 0))
        engine.loop.run()
        engine.shutdown()
        control.reportFinished(engine.stats)
    }

    init(loop: EventLoop, control: ProxyControl, target: Endpoint, seed: UInt64) {
        self.loop = loop
        self.control = control
        self.target = target
        rng = SeededGenerator(seed: seed)
    }

    func start(listenPort: Int) throws {
        listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: listenPort), limits: Self.limits) { [unowned self] in
            self.accept($0)
        }
        let poller = Timer(loop: loop, repeating: true) { [unowned self] in self.poll() }
        poller.schedule(milliseconds: Self.pollMs)
        self.poller = poller
    }

    private func poll() {
        let (commands, ticket) = control.takeCommands()
        guard !commands.isEmpty else {
            control.publish(stats)
            return
        }
        for command in commands {
            switch command {
            case .partition:
                partitioned = true
                killAll()
            case .heal:
                partitioned = false
            case let .delay(ms):
                delayNanos = UInt64(max(0, ms) * 1_000_000)
            case let .dropProbability(p):
                dropProbability = p
            case .publishStats:
                break
            case .stop:
                shutdown()
                loop.stop()
            }
        }
        control.acknowledge(ticket, stats: stats)
    }

    private func accept(_ downstream: Connection) {
        guard !partitioned else {
            stats.refused += 1
            downstream.close()
            return
        }
        let upstream: Connection
        do {
            upstream = try Connection.connect(loop: loop, to: target, limits: Self.limits)
        } catch {
            downstream.close()
            return
        }
        stats.accepted += 1
        let pair = ProxyPair(engine: self, downstream: downstream, upstream: upstream)
        pairs[ObjectIdentifier(pair)] = pair
        stats.active = pairs.count
    }

    /// Decides, per forwarded chunk, whether the link "fails" now.
    func shouldDrop() -> Bool {
        dropProbability > 0 && Double.random(in: 0..<1, using: &rng) < dropProbability
    }

    func remove(_ pair: ProxyPair) {
        pairs[ObjectIdentifier(pair)] = nil
        stats.active = pairs.count
    }

    private func killAll() {
        for pair in Array(pairs.values) { pair.kill() }
    }

    func shutdown() {
        killAll()
        listener?.close()
        listener = nil
        poller?.cancel()
    }
}

/// One proxied connection: `downstream` was accepted, `upstream` dials the target.
private final class ProxyPair {
    unowned let engine: ProxyEngine
    let downstream: Connection
    let upstream: Connection
    private var toUpstream: Relay!
    private var toDownstream: Relay!
    private var finished = false

    init(engine: ProxyEngine, downstream: Connection, upstream: Connection) {
        self.engine = engine
        self.downstream = downstream
        self.upstream = upstream
        toUpstream = Relay(pair: self, source: downstream, sink: upstream)
        toDownstream = Relay(pair: self, source: upstream, sink: downstream)
        downstream.onRead = { [unowned self] _ in self.toUpstream.sourceReadable() }
        upstream.onRead = { [unowned self] _ in self.toDownstream.sourceReadable() }
        upstream.onWritable = { [unowned self] _ in self.toUpstream.sinkWritable() }
        downstream.onWritable = { [unowned self] _ in self.toDownstream.sinkWritable() }
        downstream.onClose = { [unowned self] _, _ in self.closed(self.downstream) }
        upstream.onClose = { [unowned self] _, _ in self.closed(self.upstream) }
    }

    /// One side went away: deliver what it sent, then close the other side after flushing.
    private func closed(_ side: Connection) {
        guard !finished else { return }
        let outgoing = side === downstream ? toUpstream! : toDownstream!
        let incoming = side === downstream ? toDownstream! : toUpstream!
        incoming.discard()
        outgoing.finishAfterDelivery()
        if downstream.isClosed, upstream.isClosed { finish() }
    }

    /// Abrupt: both sides close now, nothing more is delivered.
    func kill() {
        guard !finished else { return }
        engine.stats.killed += 1
        downstream.close()
        upstream.close()
        finish()
    }

    private func finish() {
        finished = true
        toUpstream.discard()
        toDownstream.discard()
        downstream.onRead = nil
        upstream.onRead = nil
        downstream.onWritable = nil
        upstream.onWritable = nil
        downstream.onClose = nil
        upstream.onClose = nil
        engine.remove(self)
    }

    /// One direction: bytes from `source` to `sink`, held back by the current delay.
    final class Relay {
        unowned let pair: ProxyPair
        let source: Connection
        let sink: Connection
        private var queue: [(due: UInt64, bytes: [UInt8])] = []
        private var head = 0
        private var queuedBytes = 0
        private var sourceEnded = false
        private var timer: Timer?
        private var buffer: [UInt8] = []

        init(pair: ProxyPair, source: Connection, sink: Connection) {
            self.pair = pair
            self.source = source
            self.sink = sink
        }

        func sourceReadable() {
            buffer.removeAll(keepingCapacity: true)
            source.readAvailable(appendingTo: &buffer)
            guard !buffer.isEmpty else { return }
            let engine = pair.engine
            engine.stats.bytesForwarded += buffer.count
            if engine.shouldDrop() {
                pair.kill()
                return
            }
            if engine.delayNanos == 0, head == queue.count {
                sink.write(buffer)
            } else {
                queue.append((EventLoop.monotonicNanos() + engine.delayNanos, buffer))
                queuedBytes += buffer.count
                armTimer()
            }
            applyBackpressure()
        }

        func sinkWritable() {
            applyBackpressure()
        }

        /// The source is gone: deliver what is queued, then close the sink after flushing.
        func finishAfterDelivery() {
            sourceEnded = true
            if head == queue.count { sink.closeAfterFlush() }
        }

        func discard() {
            queue.removeAll()
            head = 0
            queuedBytes = 0
            timer?.cancel()
        }

        private func applyBackpressure() {
            guard !source.isClosed else { return }
            if !sink.isWritable || queuedBytes > ProxyEngine.maxDelayedBytes {
                source.pauseReading()
            } else if source.isReadingPaused {
                source.resumeReading()
            }
        }

        private func armTimer() {
            guard head < queue.count else { return }
            if timer == nil {
                timer = Timer(loop: pair.engine.loop) { [unowned self] in self.deliverDue() }
            }
            guard let timer, !timer.isScheduled else { return }
            let now = EventLoop.monotonicNanos()
            let due = queue[head].due
            timer.schedule(micros: due > now ? Int64((due - now + 999) / 1000) : Int64(0))
        }

        private func deliverDue() {
            let now = EventLoop.monotonicNanos()
            while head < queue.count, queue[head].due <= now, !sink.isClosed {
                sink.write(queue[head].bytes)
                queuedBytes -= queue[head].bytes.count
                queue[head].bytes = []
                head += 1
            }
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
                if sourceEnded { sink.closeAfterFlush() }
            } else {
                armTimer()
            }
            applyBackpressure()
        }
    }
}
